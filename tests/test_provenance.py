"""The checkout's code version: which changes make it ``+dirty``."""

import subprocess

from finsae.provenance import code_version


def _git(root, *args):
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                   capture_output=True)


def test_only_code_changes_make_the_checkout_dirty(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "docs" / "results").mkdir(parents=True)
    files = {"src/stage.py": "x = 1\n", "conf.yaml": "k: 1\n", "README.md": "# r\n", "docs/results/timing.md": "t\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "c")
    sha = code_version(tmp_path)
    assert len(sha) == 40 and not sha.endswith("+dirty")
    # what make demo's report writes (the results pages, README's headline) is not code
    (tmp_path / "docs/results/timing.md").write_text("t2\n")
    (tmp_path / "README.md").write_text("# r2\n")
    (tmp_path / "untracked.py").write_text("y = 2\n")
    assert code_version(tmp_path) == sha
    for name in ("src/stage.py", "conf.yaml"):
        (tmp_path / name).write_text(files[name] + "# changed\n")
        assert code_version(tmp_path) == sha + "+dirty", name
        (tmp_path / name).write_text(files[name])
    assert code_version(tmp_path) == sha
