"""What happens after the hand-off: providers' delivery events (verified, parsed, matched to
messages), the suppression list they feed, and the webhooks that tell the identity system."""
