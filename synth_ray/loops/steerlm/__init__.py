"""SteerLM (survey, "SteerLM"; Dong et al. 2023): attribute-conditioned SFT. Built so far: the
attribute prediction model (``method: attributes``, ``synth_ray.train.attribute_trainer``), its
scorer (``synth_ray.engines.reward_model.AttributeScorer``), the attribute conditioning
(``conditioning``), the ACSFT rows and the bootstrapping step's requested combinations
(``data``); the job that runs them as a loop comes next."""
