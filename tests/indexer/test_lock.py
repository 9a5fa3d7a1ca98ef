"""indexer.publish: the build lock survives no killed build, and can be handed to a child.

These tests run ``python -m indexer.cli`` as a real subprocess: what they check (a SIGKILLed
parent, parse workers left behind, a lock fd inherited across exec) only happens between
processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from indexer.publish import current_generation, lock_holder, try_lock

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("clean_env")

PARAGRAPH = ("<p>Paragraph {i} of page {n}: therapy sessions, weekly appointments and the first "
             "consultation are described here with enough words to look like an article.</p>")


def many_pages(folder: Path, count: int = 240, paragraphs: int = 30) -> Path:
    """``count`` small generated pages: enough for the build to parse them in worker processes."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        body = "\n".join(f'<h2 id="q{i}">Question {i} of page {n}?</h2>' + PARAGRAPH.format(i=i, n=n)
                         for i in range(paragraphs))
        (folder / f"page-{n:04d}.html").write_text(
            f"<!DOCTYPE html><html><head><title>Page {n}</title></head><body><article>"
            f"<h1>Page {n}</h1>{body}</article></body></html>", encoding="utf-8")
    return folder


def cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), **kwargs.pop("env", {})}
    return subprocess.Popen([sys.executable, "-m", "indexer.cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def children(pid: int) -> list[int]:
    """Live (non-zombie) processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_sigkilled_build_leaves_no_worker_and_no_lock_behind(tmp_path):
    corpus, index = many_pages(tmp_path / "corpus"), tmp_path / "index"
    parent = cli("build", "--corpus", str(corpus), "--index", str(index))
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while not workers:
            assert parent.poll() is None, parent.communicate()[1].decode()
            assert time.monotonic() < deadline, "the build never started parse workers"
            workers = children(parent.pid)
            time.sleep(0.005)
        time.sleep(0.2)  # let every worker start
        workers = children(parent.pid) or workers
        os.kill(parent.pid, signal.SIGKILL)
    finally:
        parent.kill()
        parent.communicate(timeout=10)
    again = cli("build", "--corpus", str(corpus), "--index", str(index))
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err.decode()
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if alive(pid)], "workers of the killed build are still running"
    assert current_generation(index) is not None


def test_a_second_build_after_the_killed_one_succeeds_within_twenty_seconds(tmp_path):
    corpus, index = many_pages(tmp_path / "corpus", count=220, paragraphs=5), tmp_path / "index"
    parent = cli("build", "--corpus", str(corpus), "--index", str(index))
    time.sleep(1.0)
    parent.kill()
    parent.communicate(timeout=10)
    started = time.monotonic()
    again = cli("build", "--corpus", str(corpus), "--index", str(index))
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err.decode()
    assert time.monotonic() - started < 20


def test_try_lock_returns_a_held_fd_and_none_while_someone_holds_it(tmp_path):
    index = tmp_path / "index"
    fd = try_lock(index)
    assert isinstance(fd, int)
    try:
        assert os.get_inheritable(fd)
        assert try_lock(index) is None
        assert lock_holder(index) == os.getpid()
    finally:
        os.close(fd)
    assert lock_holder(index) is None
    again = try_lock(index)
    assert again is not None
    os.close(again)


def test_lock_holder_is_none_for_a_stale_pid_left_in_an_unheld_lock_file(tmp_path):
    index = tmp_path / "index"
    index.mkdir()
    (index / "LOCK").write_text("pid 999999 since 2020-01-01T00:00:00Z\n")
    assert lock_holder(index) is None
    fd = try_lock(index)
    assert fd is not None
    os.close(fd)


def test_a_build_started_with_an_inherited_lock_fd_builds_and_holds_the_lock(tmp_path):
    corpus, index = many_pages(tmp_path / "corpus", count=220, paragraphs=5), tmp_path / "index"
    fd = try_lock(index)
    assert fd is not None
    child = cli("build", "--json", "--corpus", str(corpus), "--index", str(index),
                env={"FAQ_LOCK_FD": str(fd)}, pass_fds=(fd,))
    os.close(fd)
    try:
        assert try_lock(index) is None  # the child holds it now, through the inherited fd
        deadline = time.monotonic() + 30
        while lock_holder(index) != child.pid and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert child.poll() is not None or lock_holder(index) == child.pid
    finally:
        out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err.decode()
    assert current_generation(index) is not None
    fd = try_lock(index)  # released when the child ended
    assert fd is not None
    os.close(fd)


def test_an_inherited_lock_fd_of_another_file_is_not_taken_for_the_lock(tmp_path, small_corpus):
    corpus, index = small_corpus(), tmp_path / "index"
    other = os.open(tmp_path / "other", os.O_RDWR | os.O_CREAT)
    holder = try_lock(index)
    try:
        child = cli("build", "--corpus", str(corpus), "--index", str(index),
                    env={"FAQ_LOCK_FD": str(other)}, pass_fds=(other,))
        _, err = child.communicate(timeout=60)
    finally:
        os.close(other)
        os.close(holder)
    assert child.returncode == 3, err.decode()
    assert "another build is running" in err.decode()


def test_the_locked_message_names_the_pid_of_the_holder(tmp_path, small_corpus):
    corpus, index = small_corpus(), tmp_path / "index"
    fd = try_lock(index)
    try:
        child = cli("build", "--corpus", str(corpus), "--index", str(index))
        _, err = child.communicate(timeout=60)
    finally:
        os.close(fd)
    assert child.returncode == 3
    assert f"another build is running (pid {os.getpid()})" in err.decode()
