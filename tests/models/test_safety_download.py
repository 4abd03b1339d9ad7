"""Safety suite, downloads (against a local HTTP server, never the internet) and custom
checkpoints: nothing hangs, no bad or partial file is ever kept, every failure is one line
that names its cause, and a fine-tuned checkpoint loads by path without the official hash."""

from __future__ import annotations

import dataclasses
import errno
import http.server
import socket
import threading
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from src_models import weights as W
from src_models import weights_download as D
from src_models.hashing import file_sha256
from src_models.sam.build import build_sam, build_sam_random
from tests.models.tiny_backends import TEST_TINY_SAM
from tests.safety_helpers import snapshot


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(W, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.delenv(W.ENV_DIR, raising=False)
    monkeypatch.delenv(D.OFFLINE_ENV, raising=False)
    monkeypatch.setattr(D, "TIMEOUT_S", 1.0)


def _tiny_checkpoint(path: Path, seed: int = 0) -> bytes:
    torch.manual_seed(seed)
    torch.save(build_sam_random(TEST_TINY_SAM).state_dict(), path)
    return path.read_bytes()


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, dict[str, str], bytes, str]] = {}

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        status, headers, body, mode = self.routes[self.path]
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        try:
            if mode == "endless":
                for _ in range(2000):
                    self.wfile.write(body)
            elif mode == "stall":
                self.wfile.write(body)
                self.wfile.flush()
                time.sleep(3)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def server() -> Iterator[tuple[str, dict]]:
    routes: dict[str, tuple[int, dict[str, str], bytes, str]] = {}
    handler = type("Handler", (_Handler,), {"routes": routes})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    httpd.shutdown()
    httpd.server_close()


def _spec(url: str, **changes: object) -> W.WeightsSpec:
    base = dataclasses.replace(W.get_spec("sam_vit_b"), url=url, sha256=None, size=None)
    return dataclasses.replace(base, **changes)


def test_a_good_file_arrives_verified(server: tuple[str, dict], tmp_path: Path) -> None:
    url, routes = server
    payload = _tiny_checkpoint(tmp_path / "src.pth")
    routes["/ok"] = (200, {"Content-Length": str(len(payload))}, payload, "")
    sha = file_sha256(tmp_path / "src.pth")
    out = D.download(_spec(url + "/ok", sha256=sha), progress=False)
    assert out.read_bytes() == payload and sorted(p.name for p in out.parent.iterdir()) == [
        out.name
    ]
    prefix = D.download(_spec(url + "/ok", sha256=sha[:8]), tmp_path / "p", progress=False)
    assert prefix.read_bytes() == payload  # published prefixes (official file names) work


BAD = [
    ("endless", "more than the expected"),
    ("short", "transfer was cut"),
    ("empty_length_0", "empty"),
    ("empty_no_length", "empty"),
    ("stall", "within 1 s"),
    ("not_found", "answered 404"),
    ("server_error", "answered 500"),
    ("wrong_hash", "expected 0000"),
    ("wrong_size", "expected 999,999"),
    ("not_a_checkpoint", "not a weights-only checkpoint"),
    ("pickled_code", "pickled Python objects"),
    ("bad_length", "bad Content-Length"),
]


@pytest.mark.parametrize(("case", "message"), BAD, ids=[c[0] for c in BAD])
def test_a_bad_download_keeps_nothing_and_says_why(
    server: tuple[str, dict], tmp_path: Path, case: str, message: str
) -> None:
    url, routes = server
    payload = _tiny_checkpoint(tmp_path / "src.pth")
    size = {"Content-Length": str(len(payload))}
    spec = _spec(f"{url}/{case}")
    routes[f"/{case}"] = {
        "endless": (200, {}, b"x" * 65536, "endless"),
        "short": (200, {"Content-Length": str(len(payload) + 5000)}, payload, ""),
        "empty_length_0": (200, {"Content-Length": "0"}, b"", ""),
        "empty_no_length": (200, {}, b"", ""),
        "stall": (200, {"Content-Length": "100000"}, b"abc", "stall"),
        "not_found": (404, {"Content-Length": "0"}, b"", ""),
        "server_error": (500, {"Content-Length": "0"}, b"", ""),
        "wrong_hash": (200, size, payload, ""),
        "wrong_size": (200, {}, payload, ""),
        "not_a_checkpoint": (200, {}, b"<html>login page</html>", ""),
        "pickled_code": (200, {}, b"", ""),
        "bad_length": (200, {"Content-Length": "lots"}, payload, ""),
    }[case]
    if case == "endless":
        spec = dataclasses.replace(spec, size=100_000)
    elif case == "wrong_hash":
        spec = dataclasses.replace(spec, sha256="0" * 64)
    elif case == "wrong_size":
        spec = dataclasses.replace(spec, size=999_999)
    elif case == "pickled_code":
        marker = tmp_path / "pwned"
        torch.save({"model": _Payload(marker)}, tmp_path / "evil.pth")
        evil = (tmp_path / "evil.pth").read_bytes()
        routes["/pickled_code"] = (200, {"Content-Length": str(len(evil))}, evil, "")
    folder = tmp_path / "cache"
    folder.mkdir()
    before = snapshot(folder)
    with pytest.raises(RuntimeError) as error:
        D.download(spec, progress=False)
    text = str(error.value)
    assert message in text and "\n" not in text, text
    assert "weights_only=False" not in text and "check the network" not in text
    assert snapshot(folder) == before  # neither the file nor a .part stays behind
    if case == "pickled_code":
        assert not (tmp_path / "pwned").exists()


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (self.marker, "pwned"))


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (urllib.error.URLError(socket.gaierror(-2, "Name or service not known")), "no network"),
        (urllib.error.URLError(TimeoutError("timed out")), "within 1 s"),
        (PermissionError(errno.EACCES, "Permission denied"), "permission denied writing"),
        (OSError(errno.ENOSPC, "No space left on device"), "is full"),
        (ConnectionResetError(104, "reset"), "broke"),
    ],
)
def test_each_failure_names_its_cause(error: Exception, cause: str, tmp_path: Path) -> None:
    def opener(url: str) -> None:
        raise error

    with pytest.raises(RuntimeError, match=cause) as raised:
        D.download(_spec("http://example.invalid/x"), tmp_path, opener=opener, progress=False)
    assert "check the network" not in str(raised.value) or cause == "no network"


def test_stale_parts_of_dead_processes_are_removed(tmp_path: Path) -> None:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    target = tmp_path / "sam_vit_b_01ec64.pth"
    dead = tmp_path / f".{child.pid}-0123abcd.part.{target.name}"
    live = tmp_path / f".{__import__('os').getpid()}-0123abcd.part.{target.name}"
    other = tmp_path / f".{child.pid}-0123abcd.part.other.pth"
    for path in (dead, live, other):
        path.write_bytes(b"half")
    D.clean_stale_parts(target)
    assert not dead.exists() and live.exists() and other.exists()


def test_concurrent_downloads_of_one_file_do_not_collide(
    server: tuple[str, dict], tmp_path: Path
) -> None:
    url, routes = server
    payload = _tiny_checkpoint(tmp_path / "src.pth")
    routes["/ok"] = (200, {"Content-Length": str(len(payload))}, payload, "")
    spec = _spec(url + "/ok", sha256=file_sha256(tmp_path / "src.pth"))
    errors: list[BaseException] = []

    def fetch() -> None:
        try:
            D.download(spec, progress=False)
        except BaseException as error:  # collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [spec.file_name]


# --------------------------------------------------------------------------- custom checkpoints
def test_a_fine_tuned_sam_loads_by_path_without_the_official_hash(tmp_path: Path) -> None:
    official = tmp_path / "official"
    official.mkdir()
    _tiny_checkpoint(official / "tiny.pth", seed=0)
    spec = dataclasses.replace(
        W.get_spec("sam_vit_b"), file_name="tiny.pth", sha256=file_sha256(official / "tiny.pth")
    )
    tuned = tmp_path / "my_finetuned_sam.pth"
    state = build_sam_random(TEST_TINY_SAM).state_dict()
    state = {k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}
    torch.save(state, tuned)
    model = build_sam(TEST_TINY_SAM, tuned, spec)  # another name: the strict load checks it
    assert torch.allclose(
        model.state_dict()["mask_decoder.iou_token.weight"], state["mask_decoder.iou_token.weight"]
    )
    renamed = tmp_path / "tiny.pth"  # the same bytes under the official name: the hash rules
    renamed.write_bytes(tuned.read_bytes())
    with pytest.raises(RuntimeError, match="does not match"):
        build_sam(TEST_TINY_SAM, renamed, spec)
    broken = tmp_path / "my_broken_sam.pth"
    state.pop("mask_decoder.iou_token.weight")
    torch.save(state, broken)
    with pytest.raises(RuntimeError, match="does not fit Sam: .*missing"):
        build_sam(TEST_TINY_SAM, broken, spec)


@pytest.mark.usefixtures("test_tiny_sam")
def test_a_fine_tuned_checkpoint_through_the_registry(tmp_path: Path) -> None:
    from src_models.registry import build_backend

    tuned = tmp_path / "tuned_sam.pth"
    _tiny_checkpoint(tuned, seed=3)
    backend = build_backend(
        "dinov2-sam",
        device="cpu",
        weights="random",
        sam_weights=str(tuned),
        sam_model="test_tiny",
        input_size=56,
    )
    assert backend.name == "dinov2-sam"
