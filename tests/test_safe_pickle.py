"""The torch-free `pytorch_model.bin` reader: tensors load, anything else is refused unrun."""

import io
import os
import pathlib
import pickle
import zipfile

import numpy as np
import pytest
import pytorch_bin
from pytorch_bin import save_pytorch_bin

from kbert.convert import safe_pickle
from kbert.convert.safe_pickle import UnsafePickleError, load_pytorch_bin


def _state():
    rng = np.random.default_rng(0)
    return {
        "embeddings.word_embeddings.weight": rng.normal(size=(7, 4)).astype(np.float32),
        "encoder.layer.0.output.dense.bias": rng.normal(size=(4,)).astype(np.float32),
        "half": rng.normal(size=(2, 3)).astype(np.float16),
        "double": rng.normal(size=(3,)),
        "position_ids": np.arange(5, dtype=np.int64)[None],
        "flags": np.array([True, False]),
        "scalar": np.array(2.5, np.float32),
    }


def _zip_with_pickle(path, payload: bytes):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
        z.writestr("archive/version", "3\n")


def test_round_trip_keeps_names_dtypes_values(tmp_path):
    state = _state()
    save_pytorch_bin(state, tmp_path / "m.bin")
    got = load_pytorch_bin(tmp_path / "m.bin")
    assert list(got) == list(state)
    for name, value in state.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        np.testing.assert_array_equal(got[name], value)


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _WritesFile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


@pytest.mark.parametrize("payload_class", [_RunsShell, _WritesFile])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, payload_class):
    marker = tmp_path / "pwned"
    # sanity: the payload really would run under the ordinary unpickler
    pickle.loads(pickle.dumps(payload_class(tmp_path / "control")))
    assert (tmp_path / "control").exists()

    path = tmp_path / "pytorch_model.bin"
    _zip_with_pickle(path, pickle.dumps({"weight": payload_class(marker)}, protocol=2))
    with pytest.raises(UnsafePickleError,
                       match=r"refusing to load (posix|os|builtins|__builtin__)\.(system|exec)"):
        load_pytorch_bin(path)
    assert not marker.exists()


def test_payload_hidden_after_real_tensors_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = pytorch_bin.Call(pytorch_bin.Global("os", "system"), (f"touch {marker}",))
    ordered = pytorch_bin.Global("collections", "OrderedDict")
    items = [("ok", pytorch_bin.Call(ordered, ())), ("evil", evil)]
    buffer = io.BytesIO()
    pytorch_bin.Writer(buffer, protocol=2).dump(pytorch_bin.Call(ordered, (items,)))
    _zip_with_pickle(tmp_path / "m.bin", buffer.getvalue())
    with pytest.raises(UnsafePickleError, match="os.system"):
        load_pytorch_bin(tmp_path / "m.bin")
    assert not marker.exists()


def test_legacy_non_zip_file_is_refused(tmp_path):
    path = tmp_path / "old.bin"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(UnsafePickleError, match="not a zip archive"):
        load_pytorch_bin(path)


def test_non_tensor_values_are_refused(tmp_path):
    _zip_with_pickle(tmp_path / "m.bin", pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(UnsafePickleError, match="not named tensors"):
        load_pytorch_bin(tmp_path / "m.bin")


def test_truncated_storage_is_refused(tmp_path):
    save_pytorch_bin({"w": np.ones((4, 4), np.float32)}, tmp_path / "m.bin")
    with zipfile.ZipFile(tmp_path / "m.bin") as z:
        entries = {n: z.read(n) for n in z.namelist()}
    entries["archive/data/0"] = entries["archive/data/0"][:20]
    with zipfile.ZipFile(tmp_path / "bad.bin", "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    with pytest.raises(UnsafePickleError, match="has 20 bytes, expected 16 x 4"):
        load_pytorch_bin(tmp_path / "bad.bin")


def test_view_past_the_storage_end_is_refused():
    storage = safe_pickle._Storage(np.zeros(4, np.float32).tobytes(), np.float32, "0")
    with pytest.raises(UnsafePickleError, match="reads past the end"):
        safe_pickle._rebuild_tensor_v2(storage, 2, (2, 2), (2, 1))


# Files torch wrote and read, recorded once by scripts/make_torch_fixtures.py (the test command
# does not install torch).
TORCH_FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "torch"


def test_reads_real_torch_save_output_including_views_and_bfloat16():
    """torch.save of views (transposed, slices, an offset arange), float16, bfloat16 and a
    Parameter reads back as the values torch gave for each (bfloat16 widened to float32)."""
    got = load_pytorch_bin(TORCH_FIXTURES / "torch_save_views.bin")
    expected = np.load(TORCH_FIXTURES / "torch_save_views.npz")
    assert sorted(got) == sorted(expected.files)
    for name in expected.files:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)
    assert got["half"].dtype == np.float16 and got["ints"].dtype == np.int64
    assert got["transposed"].shape == (6, 5) and got["column"].shape == (6,)


def _members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_written_file_loads_in_torch_weights_only(tmp_path):
    """save_pytorch_bin writes, member for member and byte for byte, the file that
    torch.load(weights_only=True) read with every name, dtype and value equal when the fixture
    was made; a change of format must be checked against torch again (rerun the script)."""
    save_pytorch_bin(_state(), tmp_path / "m.bin")
    assert _members(tmp_path / "m.bin") == _members(TORCH_FIXTURES / "kbert_pytorch_bin.bin"), (
        "save_pytorch_bin's output changed: rerun scripts/make_torch_fixtures.py (it checks the "
        "new file with torch.load(weights_only=True))")
