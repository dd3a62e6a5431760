"""A load request of the plan made into the engine's `Endpoint`, its placeholders filled once."""

from __future__ import annotations

__all__ = ["build_endpoint"]

from collections.abc import Mapping
from typing import Any

from gonogo.checks.base import CheckContext
from gonogo.journey.variables import render, render_value
from gonogo.loadgen.engine import Endpoint
from gonogo.loadgen.settings import LoadRequest


def build_endpoint(request: LoadRequest, variables: Mapping[str, Any], ctx: CheckContext) -> Endpoint:
    def text(template: str) -> str:
        return render(template, variables, ctx.expand)

    body, content_type = request.body_template()
    headers = {name: text(value) for name, value in request.headers.items()}
    if content_type and not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = content_type
    return Endpoint(
        name=request.name,
        method=request.method,
        path=text(request.target()),
        headers=headers,
        body=text(body).encode() if body is not None else None,
        weight=request.weight,
        component=request.component,
        stream=request.stream,
        expect=(
            request.expect.compile(text, lambda value: render_value(value, variables, ctx.expand))
            if request.expect is not None
            else None
        ),
    )
