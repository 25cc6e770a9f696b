"""Rendering off the event loop: templates render on a few worker threads, each in its budget.

A template is written by a CRM user and may loop or build strings for as long as it likes, so
no render runs on the event loop: previews, saves and the delivery loop all hand theirs to a
small thread pool and await the result, and ``/healthz`` and every other request keep being
answered meanwhile. A thread cannot be stopped from outside, so what bounds a render is the
budget checked inside the sandbox (:mod:`notification_service.domain.sandbox`): steps, time
and value size, after which the render raises by itself and its thread is free again. With
``workers`` threads, at most that many renders run at once; the rest wait their turn.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from notification_service.domain.sandbox import RenderLimits
from notification_service.domain.templates import (
    SAMPLE_CONTEXT,
    RenderedMessage,
    Template,
    TemplateProblem,
    render,
    render_checked,
    validate_template,
)

__all__ = ["TemplateRenderer"]

_T = TypeVar("_T")


class TemplateRenderer:
    """Renders templates on its own worker threads, each render within ``limits``."""

    def __init__(self, limits: RenderLimits, *, workers: int = 2) -> None:
        self.limits = limits
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="render")

    async def render(self, template: Template, context: Mapping[str, Any]) -> RenderedMessage:
        """:func:`~notification_service.domain.templates.render`, off the event loop."""
        return await self._run(functools.partial(render, template, context, self.limits))

    async def render_checked(
        self, template: Template, context: Mapping[str, Any]
    ) -> RenderedMessage:
        """:func:`~notification_service.domain.templates.render_checked`, off the event loop."""
        return await self._run(functools.partial(render_checked, template, context, self.limits))

    async def problems(
        self, template: Template, context: Mapping[str, Any] = SAMPLE_CONTEXT
    ) -> list[TemplateProblem]:
        """:func:`~notification_service.domain.templates.validate_template`, off the loop."""
        return await self._run(functools.partial(validate_template, template, context, self.limits))

    def close(self) -> None:
        """Stop taking renders; those running finish within their budget."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, job: functools.partial[_T]) -> _T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, job)
