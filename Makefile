# Thin wrappers over ./dev, which does the real work (set-up included).
.PHONY: demo test setup bench
demo:
	./dev demo
test:
	./dev test
setup:
	./dev setup
bench:
	./dev bench
