"""`import npylstm` pulls in numpy only: no torch, no matplotlib, none of the test-only packages."""
import subprocess
import sys


def test_import_does_not_load_torch_or_matplotlib():
    code = ("import sys, npylstm, npylstm.functional; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'matplotlib', 'onnx', 'onnxruntime', 'keras', 'distributed', 'dask', 'nbclient')); "
            "print(bad); assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_public_names():
    import npylstm
    for name in ["Parameter", "Module", "LSTM", "LSTMCell", "Linear", "MSELoss", "Adam", "SGD",
                 "clip_grad_norm_", "functional"]:
        assert hasattr(npylstm, name), name
