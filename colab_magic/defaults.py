"""Every default a user can change with a flag, in one place. It imports nothing, so the magics can
show these in their help without loading the core."""

DEFAULT_INTERVAL = 0.5  # seconds between the sampler's readings
MIN_INTERVAL, MAX_INTERVAL = 0.05, 3600.0  # below 50 ms the sampler costs a sizeable share of a core
MIN_TIMED_STEPS = 20  # the fewest steps a trial times: a mean and a scatter of five blocks
MAX_TRIAL_STEPS = 10_000  # the most --steps may ask: 100 blocks of 100; a trial stops at an epoch anyway
DEFAULT_BUDGET = 0.10  # of the user's epoch, for all of --compare's trials, and again for --whatif's
MAX_BUDGET_PCT = 100  # --budget, in % of an epoch: a trial times an epoch at most
HISTORY_COUNT = 20  # %fit_history lists this many of the latest runs
DRIVE_TIMEOUT_S = 120.0  # Colab's own default for mounting Drive
AUTO_INPUT_CHECK_S = 20.0  # --input-check auto: fits this long pay about a second for it, a few % at most
INPUT_CHECK = "auto"
INPUT_CHECK_MODES = ("auto", "on", "off")
DRIVE_VARIABLE = "DRIVE"  # %mount_drive sets the MyDrive path in this variable
