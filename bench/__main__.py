"""Run every benchmark, or those named on the command line: python -m bench [codec ...]."""
import importlib
import sys

BENCHMARKS = ("codec", "decode_process", "latency", "inputs", "memory", "connection", "web")


def main(argv):
    names = argv or BENCHMARKS
    for name in names:
        importlib.import_module("bench." + name).main()


if __name__ == "__main__":
    main(sys.argv[1:])
