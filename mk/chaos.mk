# make chaos: SIGKILL the handler at random instants of drains on every cloud, restart it, and check
# that each trial converges to the uninterrupted run's Node and pods with nothing told twice
# (tests/chaos.rs). CHAOS_TRIALS (default 200) trials; CHAOS_SEED=0x… replays a run. The tally goes
# to target/chaos-report.txt. Not in CI (about 8 s a trial); CI runs one trial per cloud in make test.
CHAOS_TRIALS ?= 200
export CHAOS_TRIALS

.PHONY: chaos
chaos:
	$(CARGO) test --locked --test chaos chaos -- --ignored --exact --nocapture
	@cat target/chaos-report.txt
