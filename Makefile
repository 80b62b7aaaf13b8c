# The README's commands. Extra pytest arguments: make test ARGS="tests/campaigns/test_seed_demo.py -x"
.PHONY: run test bootstrap smoke bench-workers

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh $(ARGS)

bootstrap:
	bash scripts/bootstrap.sh

smoke:
	bash scripts/smoke_run.sh

# docs/scaling.md's measurement: bench_campaign with 1, 2 and 4 workers (DATABASE_URL=postgres://…)
bench-workers:
	bash scripts/bench_workers.sh
