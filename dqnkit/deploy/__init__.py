"""Using a trained agent outside training: export to ONNX / TorchScript (``export.py``) and live play in a
window (``play.py``). These modules import :mod:`dqnkit.api`, never the other way round."""
