"""Reading customer tables and turning them into validated canonical tables.

read (files -> raw frames), aliases and mapping (which column is which), views, parse, labels,
canonical and feature_columns (the steps of validation), validate (-> Table), errors.
"""
