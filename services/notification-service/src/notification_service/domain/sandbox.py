"""The Jinja2 sandbox templates render in, with a budget that stops a runaway render by itself.

Jinja2's immutable sandbox keeps templates away from Python internals; it does not bound the
work or the memory a template may spend, and CRM users write templates. So every render
carries a :class:`RenderLimits` budget, checked inside the sandbox:

- *steps*: each loop iteration, function or method call and filter call takes one; a
  template past ``max_steps`` stops (a 4,000 x 4,000 nested loop is 16 million steps);
- *time*: the same checkpoints compare the clock with the render's deadline, so a render
  whose steps are each slow stops too;
- *size*: no value a template makes may exceed ``max_chars`` characters or items, and this
  is checked *before* the value is built wherever its size depends on an argument (the
  widths of ``center``, ``ljust``, ``indent``, ``format`` and ``%``, the count of
  ``replace``, the parts of ``join`` and ``sum``, repetition ``*``, ``range``), after it
  is built elsewhere (concatenation ``~`` and ``+``, every filter and call, each block's
  output), so one step can only ever build something a few times ``max_chars`` long;
- *made in all*: the sizes of every value made add up to at most ``max_total_chars``, so
  a loop cannot pile up fresh copies of big values (``big|map('list')|list``).

Since nothing in a render escapes these checkpoints, a render stops within one step of its
budget by raising :class:`RenderLimitExceeded`; it needs no thread or process to be killed,
so rendering on a worker thread (the caller's choice) is safe. ``lipsum`` is gone: no
message needs placeholder text.
"""

from __future__ import annotations

import contextvars
import functools
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from jinja2 import nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "DEFAULT_LIMITS",
    "RenderBudget",
    "RenderLimitExceeded",
    "RenderLimits",
    "Sandbox",
    "spending",
]

# Bounds on the sandbox's arithmetic: no message needs a bigger number.
_MAX_INT_BITS: Final = 4_096
_LOOP_FILTER: Final = "crm_counted_loop"


@dataclass(frozen=True)
class RenderLimits:
    """What one render may spend: steps, seconds, and the size of any value it makes."""

    max_steps: int = 200_000
    max_seconds: float = 2.0
    max_chars: int = 100_000
    # Everything the render makes, added up: fresh copies of big values cannot pile up.
    max_total_chars: int = 5_000_000


DEFAULT_LIMITS: Final = RenderLimits()


class RenderLimitExceeded(SecurityError):
    """A render stopped because it went past one of its :class:`RenderLimits`."""


@dataclass
class RenderBudget:
    """The budget of the render in progress; ``clock`` returns monotonic seconds."""

    limits: RenderLimits
    clock: Callable[[], float] = time.monotonic
    steps: int = 0
    made: int = 0  # the size of every value made so far, added up
    deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self.deadline = self.clock() + self.limits.max_seconds

    def step(self) -> None:
        """One step more; raises once the steps or the time are spent."""
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise RenderLimitExceeded(
                f"the template takes more than {self.limits.max_steps} steps"
                " (loop iterations and calls)"
            )
        if self.clock() > self.deadline:
            raise RenderLimitExceeded(
                f"the template takes longer than {self.limits.max_seconds:g} s to render"
            )

    def allow(self, size: int, what: str = "a value") -> None:
        """Refuse making ``what`` of ``size`` characters or items, before it is made."""
        if size > self.limits.max_chars:
            raise RenderLimitExceeded(
                f"{what} would be {size} long; at most {self.limits.max_chars} is allowed"
            )
        if self.made + size > self.limits.max_total_chars:
            raise RenderLimitExceeded(
                f"the template makes more than {self.limits.max_total_chars} characters"
                " or items in all"
            )

    def checked(self, value: Any) -> Any:
        """``value`` itself, once its size is within the limits (and counted as made)."""
        if isinstance(value, str | list | tuple | dict | set | frozenset):
            self.allow(len(value))
            self.made += len(value)
        elif _is_int(value) and value.bit_length() > _MAX_INT_BITS:
            raise RenderLimitExceeded("the number would be too large")
        return value


_BUDGET: contextvars.ContextVar[RenderBudget] = contextvars.ContextVar("render_budget")


class spending:
    """Render under ``budget`` inside the block (in this thread or task)."""

    def __init__(self, budget: RenderBudget) -> None:
        self._budget = budget
        self._token: contextvars.Token[RenderBudget] | None = None

    def __enter__(self) -> RenderBudget:
        self._token = _BUDGET.set(self._budget)
        return self._budget

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _BUDGET.reset(self._token)


def _budget() -> RenderBudget:
    try:
        return _BUDGET.get()
    except LookupError:
        # A render outside `spending`: the size limits still hold (the steps cannot add up).
        return RenderBudget(DEFAULT_LIMITS)


# --- argument checks, before a value is made -----------------------------------------------------

_PRINTF_WIDTHS: Final = re.compile(r"%[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_FORMAT_NUMBERS: Final = re.compile(r"\d+")


def _check_printf(budget: RenderBudget, template: Any) -> None:
    # '%99999999s' % x: the width builds the string. A `*` width comes from the arguments,
    # which cannot be bounded from here: refuse it.
    if not isinstance(template, str):
        return
    for width, precision in _PRINTF_WIDTHS.findall(template):
        for number in (width, precision):
            if number == "*":
                raise RenderLimitExceeded("a '*' width in a % format is not allowed")
            if number:
                budget.allow(int(number), "a formatted field")


def _check_format_spec(budget: RenderBudget, template: str) -> None:
    # '{:>99999999}'.format(x), nested fields '{:{w}}' included: every number in a spec.
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return  # str.format raises the same error itself
    for _, _, spec, _ in fields:
        if spec and "{" in spec:
            raise RenderLimitExceeded("a nested width in a format string is not allowed")
        for number in _FORMAT_NUMBERS.findall(spec or ""):
            budget.allow(int(number), "a formatted field")


def _width(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return len(value)
    return 0


def _replaced_size(text: Any, old: Any, new: Any, count: Any = -1) -> int:
    text, old, new = str(text), str(old), str(new)
    hits = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(len(new) - len(old), 0)


def _joined_size(budget: RenderBudget, items: Any, separator: Any) -> int:
    # Stops counting once past the limit: a list of a huge number of references to one big
    # value must not cost its full size to measure.
    limit = budget.limits.max_chars
    gap = len(str(separator))
    size = 0
    for index, part in enumerate(items):
        size += (gap if index else 0) + (len(part) if isinstance(part, str) else len(str(part)))
        if size > limit:
            break
    return size


def _summed_size(budget: RenderBudget, items: Any) -> int:
    # sum(lists, start=[]) concatenates: the total of the parts' sizes.
    limit = budget.limits.max_chars
    size = 0
    for part in items:
        size += len(part) if isinstance(part, str | list | tuple) else 0
        if size > limit:
            break
    return size


def _sized(value: Any) -> Any:
    """An iterator's items as a list, so they can be measured before being joined; anything
    else as it is. The list is counted as made (its items are references)."""
    if isinstance(value, Iterator):
        items = list(value)
        _budget().checked(items)
        return items
    return value


def _check_arguments(budget: RenderBudget, name: str, args: tuple[Any, ...], kwargs: Any) -> None:
    """Pre-checks of the str methods and filters whose output grows with an argument.

    ``args`` start with the value the method or filter applies to.
    """
    value = args[0] if args else None
    rest = args[1:]
    if name in {"center", "ljust", "rjust", "zfill", "indent"}:
        width = rest[0] if rest else kwargs.get("width", 0)
        lines = str(value).count("\n") + 1 if name == "indent" else 1
        budget.allow(len(str(value)) + _width(width) * lines, f"the result of {name}")
    elif name == "expandtabs":
        size = rest[0] if rest else kwargs.get("tabsize", 8)
        budget.allow(len(str(value)) * max(_width(size), 1), "the result of expandtabs")
    elif name == "replace" and len(rest) >= 2:
        budget.allow(_replaced_size(value, *rest[:3]), "the result of replace")
    elif name == "join":
        if isinstance(value, str) and rest:  # separator.join(items)
            budget.allow(_joined_size(budget, rest[0], value), "the result of join")
        else:  # items|join(separator)
            separator = rest[0] if rest else kwargs.get("d", "")
            budget.allow(_joined_size(budget, value, separator), "the result of join")
    elif name == "sum" and isinstance(value, list | tuple):
        budget.allow(_summed_size(budget, value), "the result of sum")
    elif name == "format":
        _check_printf(budget, value)
    elif name in {"batch", "slice"}:
        count = rest[0] if rest else 0
        budget.allow(_width(count), f"the result of {name}")
    elif name == "tojson":
        indent = rest[0] if rest else kwargs.get("indent")
        budget.allow(_width(indent) * 1_000, "the indentation of tojson")
    elif name == "wordwrap":
        width = rest[0] if rest else kwargs.get("width", 79)
        if _width(width) < 1:
            raise RenderLimitExceeded("wordwrap needs a width of at least 1")


# --- the environment ------------------------------------------------------------------------------


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja2's code generator, with the result of every ``~`` concatenation checked."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_size(")
        super().visit_Concat(node, frame)
        self.write(")")


@pass_context
def _counted_loop(context: Context, iterable: Iterable[Any]) -> Iterator[Any]:
    # Context-dependent, so Jinja2 never runs it at compile time to fold a constant.
    del context
    budget = _budget()
    for item in iterable:
        budget.step()
        yield item


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    _budget().allow(len(numbers), "range")
    return numbers


# Filters whose output size is measured from their input: an iterator becomes a list first.
_MEASURED_FILTERS: Final = frozenset({"join", "sum"})


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    passes_first = getattr(function, "jinja_pass_arg", None) is not None

    first = 1 if passes_first else 0

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        if name in _MEASURED_FILTERS and len(args) > first:
            args = (*args[:first], _sized(args[first]), *args[first + 1 :])
        _check_arguments(budget, name, args[first:], kwargs)
        return budget.checked(function(*args, **kwargs))

    return bounded


class Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, bounded by the budget of the render in progress."""

    code_generator_class = _BoundedCodeGenerator
    # Intercepted operators cannot be folded at compile time either, so `'a' * 10**9` in a
    # template's source is refused when rendered instead of hanging the save.
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = {
            name: _bounded_filter(name, function) for name, function in self.filters.items()
        }
        self.filters[_LOOP_FILTER] = _counted_loop
        self.globals["range"] = _bounded_range
        self.globals.pop("lipsum", None)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        # Every loop iterates through the step counter: nested loops cannot run away.
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None)
            loop.iter.set_lineno(loop.lineno)
        return tree

    def concat(self, pieces: Iterable[str]) -> str:
        """Join a block's output, counting it as it comes (the top level is a generator)."""
        budget = _budget()
        collected: list[str] = []
        size = 0
        for piece in pieces:
            size += len(piece)
            budget.allow(size, "the output")
            collected.append(piece)
        return "".join(collected)

    def checked_size(self, value: Any) -> Any:
        """``value``, once its size is within the budget (for generated code)."""
        return _budget().checked(value)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Call from a template: one step, arguments checked, result size checked."""
        budget = _budget()
        budget.step()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            method = getattr(__obj, "__name__", "")
            if method == "join" and args:
                args = (_sized(args[0]), *args[1:])
            _check_arguments(budget, method, (owner, *args), kwargs)
        return budget.checked(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja2's sandboxed ``str.format``, refused when a field's width is too large."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format_spec(_budget(), value.__self__)
        return wrapped

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """``*``, ``**``, ``+`` and ``%`` with their results bounded before they are made."""
        budget = _budget()
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if _is_sequence(sequence) and isinstance(count, int):
                    budget.allow(len(sequence) * count, "the repeated value")
            both_integers = _is_int(left) and _is_int(right)
            if both_integers and abs(left).bit_length() + abs(right).bit_length() > _MAX_INT_BITS:
                raise RenderLimitExceeded("the product would be too large")
            return budget.checked(left * right)
        if operator == "**":
            both_integers = _is_int(left) and _is_int(right)
            if both_integers and abs(left).bit_length() * max(right, 0) > _MAX_INT_BITS:
                raise RenderLimitExceeded("the power would be too large")
            return left**right
        if operator == "+":
            if _is_sequence(left) and _is_sequence(right):
                budget.allow(len(left) + len(right), "the concatenation")
            return budget.checked(left + right)
        if operator == "%":
            _check_printf(budget, left)
            return budget.checked(left % right)
        return super().call_binop(context, operator, left, right)


def _is_sequence(value: Any) -> bool:
    return isinstance(value, str | list | tuple)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
