"""The backend's entry point to the program: offline render, and (Automation API) stacks.

Importing this package does nothing: no CLI lookup, no workspace, no network.
"""
