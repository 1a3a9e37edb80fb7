"""What the harness refuses, and that each refusal is one line before any work (issue 20; docs/refusals.md)."""

from __future__ import annotations

import contextlib
import copy
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.names import MAX_YAML_BYTES, BadName, check_name, short, within

RUN = ["run", "--dataset", "synthetic", "--method", "audio-svm", "--no-report"]


def _refused(capsys, argv: list[str]) -> str:
    """Run `harness ARGV`; it must stop with exit status 2 and exactly one line on stderr, which is returned."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("harness "), err
    return err


YAML_BOMB = "\n".join([
    'a: &a ["x","x","x","x","x","x","x","x","x","x"]',
    *[f"{n}: &{n} [{','.join([f'*{p}'] * 10)}]" for p, n in zip("abcdefgh", "bcdefghi", strict=True)],
    "trials: *i",
])


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path, capsys) -> None:
    """433 bytes of anchors expand to 10^9 elements: once 106 s and 5.2 GB, then MemoryError."""
    config = tmp_path / "bomb.yaml"
    config.write_text(YAML_BOMB)
    started = time.perf_counter()
    err = _refused(capsys, [*RUN, "--config", str(config)])
    assert time.perf_counter() - started < 5 and "aliases" in err and "line 2" in err


def test_large_and_non_utf8_settings_files_are_refused(tmp_path, capsys) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_YAML_BYTES + "\ntrials: 2\n")
    assert "the limit is" in _refused(capsys, [*RUN, "--config", str(big)])
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"experiment: \"caf\xe9\"\n")
    assert "not UTF-8" in _refused(capsys, [*RUN, "--config", str(latin)])


@pytest.mark.parametrize(("flags", "says"), [
    (["--trials", "10000000"], "trials must be <= 1000"),
    (["--time-budget", "nan"], "finite"),
    (["--time-budget", "inf"], "finite"),
    (["--seed", "-1"], "seed must be in"),
    (["--experiment", ""], "experiment ''"),
    (["--experiment", "../up"], "experiment '../up'"),
    (["--target", "synthetic=x' onerror='alert(1)"], "targets.synthetic"),
    (["--protocol", "synthetic=../../p"], "protocols.synthetic"),
])
def test_unbounded_or_hostile_flags_are_refused(capsys, flags, says) -> None:
    assert says in _refused(capsys, [*RUN, *flags])


def test_error_messages_quote_a_bounded_part_of_the_input(tmp_path, capsys) -> None:
    config = tmp_path / "long.yaml"
    config.write_text("trials: [" + ", ".join(["1"] * 100_000) + "]\n")
    assert len(_refused(capsys, [*RUN, "--config", str(config)])) < 400
    assert len(short("x" * 10**6)) < 80 and len(short(list(range(10**6)))) < 80


def test_the_name_rule() -> None:
    for good in ("emodb", "high-intensity", "a1"):
        assert check_name("target", good) == good
    for bad in ("", "-a", "A", "a/b", "..", "a b", "x' onerror='alert(1)", "<script>", "a" * 65, None, 3):
        with pytest.raises(BadName):
            check_name("target", bad)


def test_paths_built_from_segments_stay_under_their_root(tmp_path) -> None:
    assert within(tmp_path, "features", "emodb") == (tmp_path / "features" / "emodb").resolve()
    for escape in (("..", "x"), ("/etc",), ("a", "../../b")):
        with pytest.raises(BadName):
            within(tmp_path, *escape)



REPO = Path(__file__).resolve().parents[1]


def _parse_changed_card(tmp_path, change) -> None:
    """Parse crema-d's card with `change(data)` applied, written under tmp_path (file name = card name)."""
    import yaml

    from harness.datasets.cards import parse_card

    data = yaml.safe_load((REPO / "datasets" / "crema-d.yaml").read_text())
    change(data)
    path = tmp_path / "crema-d.yaml"
    path.write_text(yaml.safe_dump(data))
    parse_card(path)


@pytest.mark.parametrize("hostile", ["x' onerror='alert(document.domain)", "../../../../pwn-target", "A"])
@pytest.mark.parametrize("where", ["targets", "protocols"])
def test_card_target_and_protocol_names_follow_the_name_rule(tmp_path, where, hostile) -> None:
    from harness.datasets.readers import CardError

    def change(data: dict) -> None:
        named = data.setdefault(where, {})
        named[hostile] = copy.deepcopy(next(iter(named.values())) if named else data["protocol"])

    with pytest.raises(CardError, match=f"card.{where}"):
        _parse_changed_card(tmp_path, change)


def test_a_card_alias_bomb_is_refused_at_once(tmp_path) -> None:
    from harness.datasets.cards import parse_card
    from harness.datasets.readers import CardError

    card = tmp_path / "bomb.yaml"
    card.write_text(YAML_BOMB.replace("trials:", "classes:"))
    started = time.perf_counter()
    with pytest.raises(CardError, match="aliases"):
        parse_card(card)
    assert time.perf_counter() - started < 5


@pytest.fixture(scope="module")
def small_manifest(tmp_path_factory):
    from harness.datasets.synthetic import SyntheticConfig, generate, scan

    root = tmp_path_factory.mktemp("synthetic")
    generate(root, SyntheticConfig(n_speakers=2, clips_per_emotion=1))  # 8 clips
    return scan(root)


@pytest.mark.parametrize("name", ["../../../../escaped", "", "a/b", "Caps"])
def test_an_import_name_that_is_not_a_name_is_refused_before_anything_is_written(small_manifest, tmp_path,
                                                                                  name) -> None:
    import numpy as np

    from harness.features.imports import import_features
    from harness.features.store import FeatureStore

    np.savez(tmp_path / "ok.npz", clip_id=np.array(small_manifest.ids), pooled=np.zeros((8, 2)))
    store_root = tmp_path / "store"
    with pytest.raises(BadName, match="--name"):
        import_features(small_manifest, name, tmp_path / "ok.npz", FeatureStore(str(store_root)))
    assert not store_root.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["ok.npz"]


@pytest.mark.parametrize(("arrays", "says"), [
    ({"pooled": "zeros-d0"}, "dimension 0"),
    ({"pooled": "strings"}, "numeric"),
])
def test_imported_arrays_must_be_numeric_with_at_least_one_dimension(small_manifest, tmp_path, arrays,
                                                                     says) -> None:
    import numpy as np

    from harness.features.imports import ImportFormatError, import_features
    from harness.features.store import FeatureStore

    values = {"zeros-d0": np.zeros((8, 0), np.float32), "strings": np.full((8, 3), "1.0")}
    np.savez(tmp_path / "f.npz", clip_id=np.array(small_manifest.ids), pooled=values[arrays["pooled"]])
    with pytest.raises(ImportFormatError, match=says):
        import_features(small_manifest, "mine", tmp_path / "f.npz", FeatureStore(str(tmp_path / "store")))


def test_a_failed_store_write_leaves_no_temporary_file(tmp_path, monkeypatch) -> None:
    """A full disk mid-write once left `shards/.tmp-*` behind."""
    from harness.features.store import FeatureStore

    store = FeatureStore(str(tmp_path / "store"))

    class FullDisk:
        """The store's file system, except that every write fails after 10 bytes."""

        def __init__(self, fs) -> None:
            self.fs = fs

        def __getattr__(self, name: str):
            return getattr(self.fs, name)

        @contextlib.contextmanager
        def open_output_stream(self, path: str):
            with self.fs.open_output_stream(path) as stream:
                stream.write(b"0123456789")
                raise OSError(28, "No space left on device")
                yield stream

    monkeypatch.setattr(store, "fs", FullDisk(store.fs))
    with pytest.raises(OSError, match="No space"):
        store.write_blob("faces", "clip-1", b"x" * 100)
    assert [p for p in (tmp_path / "store").rglob("*") if p.is_file()] == []
