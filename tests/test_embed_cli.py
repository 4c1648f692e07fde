"""``embalg embed``: end to end on tiny inputs (in-process, so the local model loads once)."""
import io
import subprocess
import sys

import numpy as np
import pytest

import embalg as ea
from embalg.cli import main
from embalg.io import load_vector_table
from embalg.sources import local

TEXTS = ["the cat sat on the mat", "a dog barked", "the cat sat on the mat", "rain again"]


@pytest.fixture
def txt(tmp_path):
    p = tmp_path / "in.txt"
    p.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    return p


@pytest.fixture
def no_model(monkeypatch):
    """Make any model load fail the test."""
    def fail(*a, **k):
        raise AssertionError("the model was loaded")
    monkeypatch.setattr(local, "load_model", fail)


@pytest.mark.parametrize("fmt", ["parquet", "npy", "jsonl"])
def test_txt_to_vector_file(tmp_path, txt, fmt):
    out = tmp_path / f"v.{fmt}"
    assert main(["embed", str(txt), "--out", str(out), "--no-cache", "--no-progress"]) == 0
    table = load_vector_table(out)
    expected = ea.embed(TEXTS, cache=None)
    np.testing.assert_allclose(table.vectors, expected, atol=1e-6)
    if fmt != "npy":
        assert table.texts == TEXTS and table.ids == [1, 2, 3, 4]
    if fmt == "parquet":
        assert table.model == "local:all-MiniLM-L6-v2"


def test_cache_reused_across_runs(tmp_path, txt, monkeypatch):
    cache = tmp_path / "c.sqlite"
    assert main(["embed", str(txt), "--out", str(tmp_path / "a.npy"), "--cache", str(cache)]) == 0
    monkeypatch.setattr(local, "load_model", lambda *a, **k: pytest.fail("model loaded"))
    assert main(["embed", str(txt), "--out", str(tmp_path / "b.npy"), "--cache", str(cache)]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_refuses_to_overwrite(tmp_path, txt, capsys, no_model):
    out = tmp_path / "v.npy"
    out.write_bytes(b"precious")
    assert main(["embed", str(txt), "--out", str(out), "--no-cache"]) == 2
    assert "exists; pass --force" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"


def test_force_overwrites(tmp_path, txt):
    out = tmp_path / "v.npy"
    out.write_bytes(b"old")
    assert main(["embed", str(txt), "--out", str(out), "--no-cache", "--force"]) == 0
    assert np.load(out).shape == (4, 384)


def test_bad_utf8_fails_before_any_work(tmp_path, capsys, no_model):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good line\nbad \xff line\n")
    out = tmp_path / "v.parquet"
    assert main(["embed", str(bad), "--out", str(out), "--cache", str(tmp_path / "c.sqlite")]) == 2
    assert "not valid UTF-8: line 2" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "c.sqlite").exists()


@pytest.mark.parametrize("args, message", [
    (["--out", "v.csv"], "--out must end in one of"),
    (["--out", "v.npy", "--model", "bert:base"], "is not understood"),
    (["--out", "v.npy", "--chunk-average"], "--chunk-average is only for openai"),
    (["--out", "v.npy", "--batch-api"], "--batch-api is only for openai"),
    (["--out", "v.npy", "--dimensions", "0"], "dimensions must be > 0"),
])
def test_argument_errors(tmp_path, txt, capsys, no_model, args, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["embed", str(txt), *args]) == 2
    assert message in capsys.readouterr().err


def test_stdin_input(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("rain again\na dog barked\n".encode())))
    out = tmp_path / "v.jsonl"
    assert main(["embed", "-", "--out", str(out), "--no-cache"]) == 0
    table = load_vector_table(out)
    assert table.texts == ["rain again", "a dog barked"]
    np.testing.assert_allclose(table.vectors, ea.embed(table.texts, cache=None), atol=1e-6)


def test_openai_model_through_fake_server(tmp_path, monkeypatch, txt):
    from fake_openai_server import FakeOpenAI, fake_vector

    with FakeOpenAI(api_key="sk-cli-test-0123456789") as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-test-0123456789")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        out = tmp_path / "v.parquet"
        assert main(["embed", str(txt), "--model", "openai:text-embedding-3-small",
                     "--dimensions", "16", "--out", str(out), "--no-cache"]) == 0
        assert server.paid_inputs == 3  # the duplicate line is sent once
    table = load_vector_table(out)
    assert table.model == "openai:text-embedding-3-small" and table.dimensions == 16
    np.testing.assert_allclose(table.vectors[1], fake_vector("text-embedding-3-small", TEXTS[1], 16),
                               atol=1e-6)


def test_openai_missing_key_is_clear(tmp_path, txt, monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["embed", str(txt), "--model", "openai:text-embedding-3-small",
                 "--out", str(tmp_path / "v.npy"), "--no-cache"]) == 2
    assert "OPENAI_API_KEY" in capsys.readouterr().err


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "embalg", "embed", "--help"], capture_output=True,
                         text=True, check=True)
    assert "--batch-api" in out.stdout and "--chunk-average" in out.stdout


def test_batch_api_then_resume_and_ingest(tmp_path, monkeypatch, txt):
    from fake_openai_server import FakeOpenAI, fake_vector

    common = ["--model", "openai:text-embedding-3-small", "--batch-api", "--poll-interval", "0.01",
              "--batch-dir", str(tmp_path / "job")]
    with FakeOpenAI(api_key="sk-cli-batch-0123456789") as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-batch-0123456789")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        out = tmp_path / "v.npy"
        assert main(["embed", str(txt), "--out", str(out), "--cache", str(tmp_path / "a.sqlite"),
                     *common]) == 0
        assert len(server.batches) == 1 and server.requests == 0  # nothing sent online
        v = np.load(out)
        np.testing.assert_allclose(v[1], fake_vector("text-embedding-3-small", TEXTS[1]), atol=1e-6)
        np.testing.assert_array_equal(v[0], v[2])
        # the same command again resumes the finished job: no new batch, no online request
        assert main(["embed", str(txt), "--out", str(out), "--force",
                     "--cache", str(tmp_path / "a.sqlite"), *common]) == 0
        assert len(server.batches) == 1 and server.requests == 0
        # a downloaded output file fills a fresh cache without any request
        output = tmp_path / "job" / "output-0000.jsonl"
        assert output.exists()
        out2 = tmp_path / "v2.npy"
        assert main(["embed", str(txt), "--out", str(out2), "--cache", str(tmp_path / "b.sqlite"),
                     "--model", "openai:text-embedding-3-small", "--batch-dir", str(tmp_path / "job"),
                     "--ingest-batch-output", str(output)]) == 0
        assert server.requests == 0
        np.testing.assert_array_equal(np.load(out2), v)


def test_openai_long_text_needs_truncate(tmp_path, monkeypatch, capsys):
    from fake_openai_server import FakeOpenAI

    long_txt = tmp_path / "long.txt"
    long_txt.write_text("short text\n" + "word " * 9000 + "\n")
    with FakeOpenAI(api_key="sk-cli-long-0123456789") as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-cli-long-0123456789")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        base = ["embed", str(long_txt), "--model", "openai:text-embedding-3-small", "--no-cache",
                "--out", str(tmp_path / "v.npy")]
        assert main(base) == 2
        assert "8191" in capsys.readouterr().err and server.requests == 0
        assert main([*base, "--truncate"]) == 0
        assert np.load(tmp_path / "v.npy").shape == (2, 1536)
        assert main([*base, "--chunk-average", "--force"]) == 0


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_ids_carried_from_jsonl_and_parquet_inputs(tmp_path, fmt):
    src = tmp_path / f"in.{fmt}"
    ids, texts = ["doc-a", "doc-b"], ["rain again", "a dog barked"]
    ea.save_vectors(src, np.eye(2, dtype=np.float32), ids=ids, texts=texts)  # has id + text columns
    out = tmp_path / "v.parquet"
    assert main(["embed", str(src), "--out", str(out), "--no-cache"]) == 0
    table = load_vector_table(out)
    assert table.ids == ids and table.texts == texts and table.vectors.shape == (2, 384)
