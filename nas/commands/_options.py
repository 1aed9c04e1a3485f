"""Help texts of the options several commands share, so each reads the same everywhere."""

STORAGE_HELP = ("Study storage URL: sqlite:///studies/nas.db (the default), journal:FILE, postgresql://... "
                "or mysql://...")
DEVICE_HELP = "Where to train: cpu, cuda (the first GPU) or cuda:N."
STUDY_HELP = "Study name [default: the only study in the storage]."
SAMPLER_HELP = ("How candidates are proposed: tpe = multivariate TPE (learns from every scored and rejected "
                "candidate; best here), nsga2 = NSGA-II genetic search, gp = Gaussian-process Bayesian optimisation "
                "(needs scipy, ~1 s per trial), random = uniform sampling (a baseline).")
