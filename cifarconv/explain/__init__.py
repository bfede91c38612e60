"""The explainer: how one convolution becomes three GEMMs, as numbers and as a picture.

    python -m cifarconv.explain                       # a small default layer
    python -m cifarconv.explain --model resnet18 --batch-size 512 --dtype bfloat16
    python -m cifarconv.explain --groups 2 --in-channels 4 --out-channels 4 --plot conv.png

An application, like the trainer: the library never imports it.  One file per job:

- `cli`: the command line, the checks of an impossible layer, and ``main``;
- `figures`: per layer its GEMMs, FLOPs, column matrix, bytes and intensity of both designs,
  and time floors (all from `cifarconv.perf`, the benchmark's arithmetic), and a model's totals;
- `text`: the same figures as text;
- `proof`: the chosen backend's columns against ``F.unfold``, and columns @ weight against ``F.conv2d``;
- `plot`: ``--plot``, the picture of a tiny instance of the layer, or bars per layer of a model.
"""
