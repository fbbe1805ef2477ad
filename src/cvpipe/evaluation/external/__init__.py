"""Benchmark detectors evaluated without training: ONNX models and TensorFlow frozen graphs.

Seed 000 measured its detector against a COCO-pretrained TensorFlow SSD; here such a
model is scored exactly like a trained detect run:

- :mod:`~cvpipe.evaluation.external.labels`: benchmark class ids → names → dataset classes;
- :mod:`~cvpipe.evaluation.external.detectors`: the back ends (OpenCV DNN, ONNX Runtime)
  as detection predictors;
- :mod:`~cvpipe.evaluation.external.coco`: the built-in COCO graph through its converted
  PyTorch model, where OpenCV cannot read TensorFlow graphs;
- :mod:`~cvpipe.evaluation.external.load`: a spec → a detector, and its evaluation.
"""
