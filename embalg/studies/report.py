"""Study output directories: report.json, report.md and PNG plots, written atomically.

``StudyOutput(out_dir, force=False)`` refuses an existing non-empty directory
unless ``force`` (then files are replaced one by one, each atomically). Every
file is written to a temporary name and renamed, and ``report.json`` is
written last, so a directory with a report.json holds a complete study.
"""
from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_path, write_json, write_text


class StudyOutput:
    """Where a study writes. Usage::

        out = StudyOutput("runs/cone", force=False)
        out.figure("pairwise_hist.png", fig)   # a matplotlib Figure
        out.markdown(text)                     # report.md
        out.json(report)                       # report.json, last
    """

    def __init__(self, out_dir, *, force: bool = False):
        self.dir = Path(out_dir)
        if self.dir.exists():
            if not self.dir.is_dir():
                raise FileExistsError(f"output path {self.dir} exists and is not a directory")
            if any(self.dir.iterdir()) and not force:
                raise FileExistsError(f"output directory {self.dir} exists and is not empty; "
                                      "pass --force to overwrite it")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.files: list[str] = []

    def path(self, name: str) -> Path:
        return self.dir / name

    def figure(self, name: str, fig) -> Path:
        """Save a matplotlib figure as PNG atomically, then close it."""
        import matplotlib.pyplot as plt

        target = self.path(name)
        with atomic_path(target, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
        plt.close(fig)
        self.files.append(name)
        return target

    def text(self, name: str, text: str) -> Path:
        target = self.path(name)
        write_text(target, text)
        self.files.append(name)
        return target

    def markdown(self, text: str) -> Path:
        return self.text("report.md", text)

    def json(self, report: dict, name: str = "report.json") -> Path:
        target = self.path(name)
        write_json(target, report)
        self.files.append(name)
        return target


def new_figure(*, figsize=(7, 4)):
    """A headless matplotlib ``(fig, ax)`` (Agg backend, no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize)
