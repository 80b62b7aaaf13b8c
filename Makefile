# The README's commands. Extra pytest arguments: make test ARGS="tests/campaigns/test_seed_demo.py -x"
.PHONY: run test bootstrap smoke

run:
	bash scripts/run.sh

test:
	bash scripts/test.sh $(ARGS)

bootstrap:
	bash scripts/bootstrap.sh

smoke:
	bash scripts/smoke_run.sh
