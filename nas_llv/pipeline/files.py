"""The pipeline's steps on files around a search: ``import_ruas`` (published weights as a model
file), ``compare`` (evaluations side by side), ``report`` (a run or sweep as one HTML page) and
``fit_noise`` (the synthesis's noise keys fitted to real photographs). No torch at import:
``compare`` loads none."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from nas_llv.data.noisecal import Calibration, ImageFit


@dataclass(frozen=True)
class Imported:
    """A model file written from the RUAS authors' weights (``release`` cvpr or tpami)."""

    path: Path
    release: str
    variant: str  # the network's variant, or 'denoiser only'
    params: int
    unused: list[str]  # the checkpoint's modules the variant leaves out


def import_ruas(weights: str | Path, output: str | Path = "model.pt", release: str | None = None,
                variant: str | None = None) -> Imported:
    """Convert the RUAS authors' checkpoint ``weights`` into the model file ``output`` that
    ``enhance``, ``evaluate`` and ``train`` read; ``release`` and ``variant`` as
    ``nas_llv.export.ruas_import.import_ruas`` takes them (None: detected, the release's default)."""
    from nas_llv.export.modelfile import save_model
    from nas_llv.export.ruas_import import import_ruas as convert
    from nas_llv.paths import check_output_file

    check_output_file(output, "--output")
    net, genotype, extra = convert(weights, release=release, variant=variant)
    path = save_model(output, genotype, net, extra=extra)
    return Imported(path, extra["release"], genotype.network.get("variant", "denoiser only"),
                    sum(p.numel() for p in net.parameters()), list(extra["unused"]))


@dataclass(frozen=True)
class Comparison:
    """Evaluations side by side: each one's ``summary.json`` record (with ``label`` and
    ``summary_path``), the Markdown ``table`` of them, and the file it was ``written`` to, if any."""

    records: list[dict[str, Any]]
    table: str
    written: Path | None


def compare(targets: Sequence[str | Path], output: str | Path | None = None) -> Comparison:
    """Every evaluation under ``targets`` (summary.json files, ``eval`` output folders, or run folders
    holding ``eval-*/``) as one Markdown table, also written to ``output`` when given."""
    from nas_llv.atomic import write_text
    from nas_llv.evaluation.compare import load_summaries, markdown_table
    from nas_llv.paths import check_output_file

    if output:
        check_output_file(output, "--output")
    records = load_summaries(targets)
    text = markdown_table(records)
    return Comparison(records, text, write_text(output, text) if output else None)


def report(target: str | Path, output: str | Path | None = None, samples: int = 3, plots: str = "auto") -> Path:
    """Write ``target`` (a run, sweep or ``eval -o`` folder) as one HTML page to ``output`` (default
    ``TARGET/report.html``; ``nas_llv.report.write_report``), waiting for the folder's writer."""
    from nas_llv.report import REPORT, write_report
    from nas_llv.runlock import writing_into

    out = Path(output) if output else Path(target) / REPORT
    with writing_into(out.parent):  # a report written into a run folder waits for its writer
        return write_report(target, out, samples=samples, plots=plots)


@dataclass(frozen=True)
class NoiseFit:
    """``fit_noise``'s calibration (each image's fit, the images left out, the keys), the variance
    it matched (``reading``: pixel or highpass) and the synthesis settings it was read back through."""

    calibration: Calibration
    reading: str
    gamma: float
    tone_curve: bool

    def recipe_lines(self, overrides: bool = False) -> list[str]:
        """``key: value`` lines for a recipe's ``data:``, or one line of ``data.key=value`` words."""
        from nas_llv.data.noisecal import recipe_lines

        return recipe_lines(self.calibration.keys, overrides=overrides)

    def points(self, fit: ImageFit) -> tuple[Any, Any]:
        """``fit``'s noise level function in the photographs' terms: (mean, noise std), 8-bit levels."""
        from nas_llv.data.noisecal import encoded_points

        return encoded_points(fit.nlf, self.gamma, self.tone_curve)


def fit_noise(folder: str | Path, patch: int = 16, max_images: int | None = None, reading: str = "pixel",
              gamma: float = 2.2, tone_curve: bool = True) -> NoiseFit:
    """Fit the synthesis's noise keys to the real photographs in ``folder``
    (``nas_llv.data.noisecal.calibrate``, docs/data.md)."""
    from nas_llv.data.noisecal import calibrate

    cal = calibrate(folder, patch=patch, max_images=max_images, reading=reading, gamma=gamma, tone_curve=tone_curve)
    return NoiseFit(cal, reading, gamma, tone_curve)
