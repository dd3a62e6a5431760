"""Scripted HTTP steps: requests, variables, extraction and assertions, shared by every check
kind that talks HTTP (journeys, load, chaos, security). No check kind imports another; they
all import this."""
