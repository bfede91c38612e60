"""The CIFAR-10 trainer: an application on top of the cifarconv library, which never imports it.

    python -m cifarconv.train --conv torch,custom --model fastnet

One file per job: ``cli.py`` (the command line), ``loop.py`` (one training run, and the
comparison of backends over seeds), ``recipes.py`` (each model's hyperparameters),
``models.py``, ``data/`` (reading CIFAR-10, on-device batches and augmentation),
``report.py`` (results.json, metrics.csv, curves.png, the table), ``checkpoint.py`` and
``atomic.py`` (files written whole or not at all).  Nothing is imported here, so that
``cifarconv.train.models`` loads without the trainer's extra dependencies.
"""
