"""What the tests share: servers on loopback, generated masks, the official client."""
