"""Finding the contract's error inside framework wrappers (one walker for every engine)."""

from __future__ import annotations

from analytics_api.errors import AuthenticationError, find_error, wrapped_errors


class StepFailed(Exception):
    """Shaped like dlt's PipelineStepFailed: the original error in an `exception` attribute."""

    def __init__(self, exception: BaseException) -> None:
        super().__init__("step failed")
        self.exception = exception


def test_the_error_is_found_through_causes_contexts_and_step_wrappers() -> None:
    original = AuthenticationError("401 on /v1/app")
    try:
        try:
            raise original
        except AuthenticationError as exc:
            raise RuntimeError("while extracting") from exc
    except RuntimeError as runtime:
        wrapped = StepFailed(runtime)
    assert find_error(wrapped, AuthenticationError) is original
    assert find_error(wrapped, KeyError) is None


def test_a_cycle_is_walked_once() -> None:
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert [str(e) for e in wrapped_errors(a)] == ["a", "b"]
