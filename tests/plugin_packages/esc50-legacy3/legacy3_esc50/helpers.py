"""A helper module of the package: it imports from a path of plugin API 4 too."""

from esc50.core.contracts import uniform


def gain_range() -> tuple[float, float]:
    return (0.5, 1.0)


__all__ = ["uniform", "gain_range"]
