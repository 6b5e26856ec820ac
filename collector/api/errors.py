"""API errors: a stable code, a message from the catalog in the caller's language, and where.

Routes raise ``collector.errors.Rejected`` (the same error the ingest path and the store raise);
``install`` turns it into the JSON ``ErrorBody`` every client sees.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from centerwatch.i18n import pick_lang, t
from centerwatch.wire import ErrorBody, encode
from collector.errors import Rejected, StoreError

log = logging.getLogger("centerwatch.api")


def error_response(request: Request, code: str, status: int, where: str = "", **fields: object) -> Response:
    lang = pick_lang(request.headers.get("accept-language"), request.query_params.get("lang"))
    body = ErrorBody(error=code, message=t(f"api.{code}", lang, **fields), where=where)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(encode(body), status_code=status, media_type="application/json", headers=headers)


def install(app: FastAPI) -> None:
    async def on_rejected(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Rejected)
        return error_response(request, exc.code, exc.status, exc.where, **exc.fields)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(request, "bad_request", 422, where, detail=str(first.get("msg", "")))

    async def on_store(request: Request, exc: Exception) -> Response:
        # the database is busy or failing: the caller may retry; the log has the file and cause
        log.error("store error on %s %s: %s", request.method, request.url.path, exc)
        return error_response(request, "store_unavailable", 503)

    app.add_exception_handler(Rejected, on_rejected)
    app.add_exception_handler(StoreError, on_store)
    app.add_exception_handler(RequestValidationError, on_validation)
