"""Parts of a recipe that most recipes switch off, each a dict of its keys (recipes.py explains them):
airbench94's whitening init and lookahead, and the plateau schedule."""

NO_WHITENING = {"whiten_images": 0, "whiten_eps": 0.0, "whiten_bias_epochs": 0}
NO_LOOKAHEAD = {"lookahead_every": 0, "lookahead_decay": 0.0, "lookahead_power": 0}
NO_PLATEAU = {"plateau_factor": 0.0, "plateau_patience": 0, "plateau_threshold": 0.0}
