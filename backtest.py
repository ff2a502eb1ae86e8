"""`python backtest.py`: thin Hydra entry point of the backtest stage (planned; exits with a clear message today)."""

from finsae.glue.app import cli
from finsae.glue.pending import hydra_entry

main = hydra_entry("backtest")

if __name__ == "__main__":
    cli(main)
