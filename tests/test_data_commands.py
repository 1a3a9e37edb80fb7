"""`harness data list | scan | verify | fetch`, driven through argparse as the CLI will drive them."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile

import pytest
from fixtures.corpora import REAL_DATA, ravdess_tree, touch, write_wav

import harness.datasets as registry
from harness.cli import build_parser
from harness.datasets.cards import register_card_dir


def run(*argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    return args.func(args)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for key in list(__import__("os").environ):
        if key.startswith("HARNESS_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_list_says_where_each_corpus_is_looked_for(tmp_path, capsys):
    ravdess_tree(tmp_path / "data" / "ravdess", actors=range(1, 3), av=False)
    assert run("data", "list", "--data-root", str(tmp_path / "data")) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert {"ravdess", "crema-d", "meld", "iemocap", "emodb", "savee", "synthetic"} <= set(lines)
    assert " found " in lines["ravdess"] and str(tmp_path / "data" / "ravdess") in lines["ravdess"]
    assert "not found" in lines["iemocap"] and "https://sail.usc.edu/iemocap/" in lines["iemocap"]
    assert "harness data fetch emodb" in lines["emodb"]


def test_scan_prints_counts_and_writes_the_manifest(tmp_path, capsys):
    ravdess_tree(tmp_path / "rav", actors=range(1, 5), av=False)
    touch(tmp_path / "rav" / "Actor_01" / "03-01-01-01-01-01-1.wav")  # a malformed name
    code = run("data", "scan", "ravdess", "--data-dir", str(tmp_path / "rav"), "--workspace", str(tmp_path / "ws"))
    assert code == 0
    captured = capsys.readouterr()
    # The default reads the speech clips only (8 per actor in the fixture); song is the `song` target.
    assert "ravdess: 32 clips" in captured.out and "protocol: speaker-kfold(k=6)" in captured.out
    assert "modalities: audio (32 clips), text (32 clips); ABSENT: video" in captured.out
    assert "speakers (4):\n  01: 8  02: 8  03: 8  04: 8" in captured.out
    # 1 malformed name + 6 song labels excluded by design (one row each)
    assert "PROBLEMS: 7 rows" in captured.err and "03-01-01-01-01-01-1.wav" in captured.err
    assert (tmp_path / "ws" / "manifests" / "ravdess" / "manifest.parquet").exists()


def test_scan_of_an_absent_corpus_fails_with_the_fix(tmp_path, capsys):
    assert run("data", "scan", "iemocap", "--data-root", str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "not found under" in err and "HARNESS_DATA_IEMOCAP" in err


@pytest.mark.skipif(not (REAL_DATA / "meld" / "train_sent_emo.csv").exists(), reason="real MELD CSVs absent")
def test_scan_real_meld_from_env_override(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_DATA_MELD", str(REAL_DATA / "meld"))
    assert run("data", "scan", "meld", "--workspace", str(tmp_path / "ws")) == 0
    out = capsys.readouterr().out
    assert "meld: 11098 clips" in out and "ABSENT: audio, video" in out
    assert "splits (2):\n  dev: 1109  train: 9989" in out
    assert run("data", "scan", "meld", "--target", "sentiment", "--workspace", str(tmp_path / "ws")) == 0
    assert "meld@sentiment: 11098 clips" in capsys.readouterr().out


def test_scan_writes_a_manifest_a_group_can_read(tmp_path, capsys):
    """A workspace shared by a group: files follow the umask (0o022 -> 0644), never owner-only 0600."""
    import os
    import stat

    ravdess_tree(tmp_path / "rav", actors=range(1, 3), av=False)
    previous = os.umask(0o022)
    try:
        assert run("data", "scan", "ravdess", "--data-dir", f"ravdess={tmp_path / 'rav'}",
                   "--workspace", str(tmp_path / "ws")) == 0
    finally:
        os.umask(previous)
    written = sorted((tmp_path / "ws" / "manifests" / "ravdess").iterdir())
    assert {p.name for p in written} >= {"manifest.parquet", "problems.csv"}
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def emodb_like(root):
    for i, name in enumerate(("03a01Fa", "03a01Wa", "08a01Na", "08a02Tb", "09a01Ea")):
        write_wav(root / "wav" / f"{name}.wav", freq=200 + 20 * i)


def test_verify_reports_undecodable_files(tmp_path, capsys):
    emodb_like(tmp_path / "emo")
    assert run("data", "verify", "emodb", "--data-dir", str(tmp_path / "emo"), "--workspace", str(tmp_path)) == 0
    assert "5 decoded" in capsys.readouterr().out
    (tmp_path / "emo" / "wav" / "08a02Tb.wav").write_bytes(b"RIFF not really a wav")
    assert run("data", "verify", "emodb", "--data-dir", str(tmp_path / "emo"), "--workspace", str(tmp_path)) == 1
    captured = capsys.readouterr()
    assert "5 clips, 4 decoded, 1 failed," in captured.out  # never "5 decoded" when one did not
    err = captured.err
    assert "verify: 1 FAILURES" in err and "wav/08a02Tb.wav" in err and "not decodable" in err
    assert (tmp_path / "manifests" / "emodb" / "verify_failures.csv").exists()


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves one in-memory archive with HTTP Range support, recording the Range headers it was sent."""

    payload = b""
    ranges: list[str | None] = []

    def do_GET(self):  # noqa: N802 (http.server API)
        if self.path != "/toy.zip":
            self.send_error(404)
            return
        requested = self.headers.get("Range")
        type(self).ranges.append(requested)
        start = int(requested.removeprefix("bytes=").rstrip("-")) if requested else 0
        body = self.payload[start:]
        self.send_response(206 if requested else 200)
        if requested:
            self.send_header("Content-Range", f"bytes {start}-{len(self.payload) - 1}/{len(self.payload)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in ("s1_ang_1", "s1_neu_1", "s2_ang_1", "s2_neu_1", "s3_ang_1", "s3_neu_1"):
            archive.writestr(f"wav/{name}.wav", b"placeholder " + name.encode() * 200)
    RangeHandler.payload, RangeHandler.ranges = buffer.getvalue(), []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


CARD = """
name: toy-fetch
title: A corpus with a public URL
modalities: [audio]
classes: [angry, neutral]
protocol: {{name: leave-one-speaker-out}}
present: ["wav/*.wav"]
obtain:
  instructions: harness data fetch toy-fetch
  archives: [{{name: toy.zip, url: "{url}", sha256: "{sha}", size: {size}, extract: true}}]
reader:
  kind: filename
  files: [{{glob: "wav/*.wav", role: audio}}]
  pattern: 'wav/(?P<speaker>s\\d)_(?P<emotion>ang|neu)_(?P<take>\\d)'
derive:
  emotion_name: {{from: emotion, values: {{ang: angry, neu: neutral}}}}
clip_id: "{{speaker}}_{{emotion}}_{{take}}"
speaker: "{{speaker}}"
label: "{{emotion_name}}"
"""


def fetch_card(tmp_path, monkeypatch, url: str, sha: str, size: int) -> None:
    registry.dataset_names()  # load every card before taking a copy
    monkeypatch.setattr(registry._DATASETS, "items", dict(registry._DATASETS.items))
    (tmp_path / "cards").mkdir(exist_ok=True)
    (tmp_path / "cards" / "toy-fetch.yaml").write_text(CARD.format(url=url, sha=sha, size=size))
    register_card_dir(tmp_path / "cards")


def test_fetch_resumes_checks_and_extracts(tmp_path, monkeypatch, server, capsys):
    payload = RangeHandler.payload
    url = f"http://127.0.0.1:{server.server_address[1]}/toy.zip"
    fetch_card(tmp_path, monkeypatch, url, hashlib.sha256(payload).hexdigest(), len(payload))
    root = tmp_path / "data" / "toy-fetch"
    touch(root / ".downloads" / "toy.zip.part", payload[:500])  # an interrupted earlier download
    assert run("data", "fetch", "toy-fetch", "--data-root", str(tmp_path / "data")) == 0
    assert RangeHandler.ranges == ["bytes=500-"]
    assert (root / ".downloads" / "toy.zip").read_bytes() == payload
    assert sorted(p.name for p in (root / "wav").iterdir())[:2] == ["s1_ang_1.wav", "s1_neu_1.wav"]
    assert "now run `harness data scan toy-fetch`" in capsys.readouterr().out
    assert run("data", "fetch", "toy-fetch", "--data-root", str(tmp_path / "data")) == 0
    assert RangeHandler.ranges == ["bytes=500-"]  # complete and extracted: nothing fetched again
    assert run("data", "scan", "toy-fetch", "--data-root", str(tmp_path / "data"),
               "--workspace", str(tmp_path / "ws")) == 0
    assert "toy-fetch: 6 clips" in capsys.readouterr().out
    # verify checks the downloaded archive against the card's SHA-256.
    assert run("data", "verify", "toy-fetch", "--no-decode", "--data-root", str(tmp_path / "data"),
               "--workspace", str(tmp_path / "ws")) == 0
    assert "1 checksums checked" in capsys.readouterr().out
    (root / ".downloads" / "toy.zip").write_bytes(payload[:-1] + b"!")
    assert run("data", "verify", "toy-fetch", "--no-decode", "--data-root", str(tmp_path / "data"),
               "--workspace", str(tmp_path / "ws")) == 1
    assert ".downloads/toy.zip SHA-256 mismatch" in capsys.readouterr().err


def test_fetch_rejects_a_checksum_mismatch(tmp_path, monkeypatch, server, capsys):
    url = f"http://127.0.0.1:{server.server_address[1]}/toy.zip"
    fetch_card(tmp_path, monkeypatch, url, "0" * 64, len(RangeHandler.payload))
    assert run("data", "fetch", "toy-fetch", "--data-root", str(tmp_path / "data")) == 1
    assert "does not match the card's" in capsys.readouterr().err
    downloads = tmp_path / "data" / "toy-fetch" / ".downloads"
    assert (downloads / "toy.zip.bad").exists() and not (downloads / "toy.zip").exists()
    assert not (tmp_path / "data" / "toy-fetch" / "wav").exists()


def test_fetch_from_a_mirror_and_refusal_without_url(tmp_path, monkeypatch, server, capsys):
    fetch_card(tmp_path, monkeypatch, "https://example.invalid/toy.zip", hashlib.sha256(RangeHandler.payload)
               .hexdigest(), len(RangeHandler.payload))
    mirror = f"http://127.0.0.1:{server.server_address[1]}"
    assert run("data", "fetch", "toy-fetch", "--data-root", str(tmp_path / "d"), "--mirror", mirror) == 0
    assert run("data", "fetch", "iemocap", "--data-root", str(tmp_path / "d")) == 1
    assert "iemocap has no public download URL" in capsys.readouterr().err
