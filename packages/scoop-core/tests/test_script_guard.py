import textwrap

from scoop._script import names_only_under_main_guard


def guard_names(source: str) -> set[str]:
    return set(names_only_under_main_guard(textwrap.dedent(source)))


def test_names_defined_only_under_the_guard():
    source = """
        import os
        def top(x): return x
        class Top: pass
        LIMIT = 3
        if __name__ == "__main__":
            def inner(x): return x
            class Local: pass
            data = [1]
            for i in range(2): pass
            import json as js
            top = 5
    """
    assert guard_names(source) == {"inner", "Local", "data", "i", "js"}


def test_reversed_comparison_and_else_branch():
    source = """
        if "__main__" == __name__:
            def a(): pass
        else:
            def b(): pass
    """
    assert guard_names(source) == {"a"}


def test_other_conditions_count_as_top_level():
    assert guard_names("if True:\n    def f(): pass\n") == set()


def test_syntax_error_gives_nothing():
    assert guard_names("def (:") == set()
