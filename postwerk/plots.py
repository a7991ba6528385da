"""The monitor's plots, drawn on the operator's side from its report (the functions ship
no plotting library): the confidence histogram and the predicted labels, as PNG."""

from pathlib import Path


def draw(report: dict, folder: Path) -> list[Path]:
    """confidence.png and labels.png in `folder`; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    from matplotlib import pyplot

    histogram = report["confidence_histogram"]
    charts = {
        "confidence.png": (
            "confidence of the window's predictions",
            [f"{i / len(histogram):.1f}" for i in range(len(histogram))],
            histogram,
        ),
        "labels.png": (
            "predicted labels in the window",
            list(report["predicted_labels"]),
            list(report["predicted_labels"].values()),
        ),
    }
    folder.mkdir(parents=True, exist_ok=True)
    saved = []
    for name, (title, names, counts) in charts.items():
        figure, axes = pyplot.subplots(figsize=(7, 3.5))
        axes.bar(names, counts, color="#2457c5")
        axes.set_ylim(bottom=0)
        if not any(counts):
            axes.text(0.5, 0.5, "no results in the window", ha="center", transform=axes.transAxes)
        axes.set_title(title)
        axes.set_ylabel("e-mails")
        axes.tick_params(axis="x", labelrotation=30)
        figure.tight_layout()
        figure.savefig(folder / name, format="png", dpi=100)
        pyplot.close(figure)
        saved.append(folder / name)
    return saved
