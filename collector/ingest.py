"""Decoding and checking an uploaded batch: pure functions, no I/O.

Everything that can be refused is refused here, before the store opens a transaction, so a bad
batch leaves nothing behind. Each refusal is an ``Rejected`` with a stable code and the
place in the batch (``parts[3].samples[17]``) that is wrong.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import msgspec

from centerwatch.wire import BATCH_DECODER, SUPPORTED_VERSIONS, Batch
from collector.errors import Rejected


class _VersionOnly(msgspec.Struct):
    v: int = 0


_VERSION_DECODER = msgspec.json.Decoder(_VersionOnly)


@dataclass(frozen=True)
class IngestLimits:
    max_body_bytes: int = 8 * 1024 * 1024
    max_decoded_bytes: int = 64 * 1024 * 1024
    max_future_ms: int = 5 * 60 * 1000
    max_age_ms: int = 35 * 24 * 3600 * 1000


def decompress(body: bytes, encoding: str, limits: IngestLimits) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise Rejected("bad_encoding", 415, got=encoding)
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(body, limits.max_decoded_bytes)
    except zlib.error as exc:
        raise Rejected("bad_gzip", 400, detail=str(exc)) from exc
    if inflater.unconsumed_tail:
        raise Rejected("too_large", 413, limit=limits.max_decoded_bytes)
    if not inflater.eof:
        raise Rejected("bad_gzip", 400, detail="truncated stream")
    return out


def decode_batch(raw: bytes) -> Batch:
    try:
        batch = BATCH_DECODER.decode(raw)
    except msgspec.DecodeError as exc:
        # A peer on another schema version fails validation first; name the version instead.
        try:
            version = _VERSION_DECODER.decode(raw).v
        except msgspec.DecodeError:
            version = None
        if version is not None and version not in SUPPORTED_VERSIONS:
            raise Rejected("bad_version", 400, got=version, supported=_supported()) from exc
        code = "bad_schema" if isinstance(exc, msgspec.ValidationError) else "bad_json"
        raise Rejected(code, 400, detail=str(exc)) from exc
    if batch.v not in SUPPORTED_VERSIONS:
        raise Rejected("bad_version", 400, got=batch.v, supported=_supported())
    return batch


def _supported() -> str:
    return ", ".join(str(v) for v in sorted(SUPPORTED_VERSIONS))


def check_batch(batch: Batch, agent_id: str, now_ms: int, limits: IngestLimits) -> None:
    """Refuse data an agent may not write: another agent's, or at impossible times.

    Metric and label names (and the reserved ``center``/``host`` labels) are checked by the store
    when it first sees a series, not here on every sample.
    """
    if batch.agent_id != agent_id:
        raise Rejected("wrong_agent", 403, where="agent_id", got=batch.agent_id)
    newest = now_ms + limits.max_future_ms
    oldest = now_ms - limits.max_age_ms
    seen: set[int] = set()
    for p_index, part in enumerate(batch.parts):
        if part.seq in seen:
            raise Rejected("duplicate_seq", 400, where=f"parts[{p_index}].seq", seq=part.seq)
        seen.add(part.seq)
        if part.subject == "" or "\n" in part.subject:
            raise Rejected("bad_subject", 400, where=f"parts[{p_index}].subject")
        samples = part.samples
        if samples:
            stamps = [s.ts_ms for s in samples]
            if max(stamps) > newest or min(stamps) < oldest:
                s_index = next(i for i, ts in enumerate(stamps) if ts > newest or ts < oldest)
                ts = stamps[s_index]
                code = "future_timestamp" if ts > newest else "old_timestamp"
                raise Rejected(code, 400, where=f"parts[{p_index}].samples[{s_index}]", ts=ts, now=now_ms)
        for e_index, event in enumerate(part.events):
            if event.ts_ms > newest:
                raise Rejected(
                    "future_timestamp", 400, where=f"parts[{p_index}].events[{e_index}]", ts=event.ts_ms, now=now_ms
                )
