"""Evaluation toolkit: OPE metrics (pysot-toolkit definitions), ``mlkd test`` runner, plots, OpenCV peers."""
