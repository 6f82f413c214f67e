"""Experiments: named training variants on one SimScenes world, trained, predicted, scored and compared
(``easyocc compare``). Definitions are typed YAML files (``definition.py``); the shipped ones live in
``easyocc/configs/experiments/``."""
