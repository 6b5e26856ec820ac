"""Shared route dependencies: the app context, the caller's language, the calling agent."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from centerwatch.i18n import pick_lang
from collector.auth import hash_token
from collector.context import AppContext
from collector.errors import Rejected
from collector.store.base import AgentRecord


async def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


async def get_lang(request: Request) -> str:
    ctx: AppContext = request.app.state.ctx
    return pick_lang(request.headers.get("accept-language"), request.query_params.get("lang"), ctx.settings.lang)


async def authenticate(ctx: AppContext, authorization: str) -> AgentRecord:
    """The agent behind an ``Authorization: Bearer <token>`` header, or ``Rejected`` (401)."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Rejected("unauthorized", 401)
    agent = await ctx.agents.lookup(hash_token(token.strip()))
    if agent is None:
        raise Rejected("unauthorized", 401)
    if agent.revoked:
        raise Rejected("revoked", 401, agent=agent.id)
    return agent


async def get_agent(request: Request) -> AgentRecord:
    ctx: AppContext = request.app.state.ctx
    return await authenticate(ctx, request.headers.get("authorization", ""))


Ctx = Annotated[AppContext, Depends(get_ctx)]
Lang = Annotated[str, Depends(get_lang)]
Agent = Annotated[AgentRecord, Depends(get_agent)]
