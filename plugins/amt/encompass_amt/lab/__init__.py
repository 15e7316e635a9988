"""The lab's AMT PCs: a WS-Management responder speaking what Intel AMT speaks (no AMT simulator
exists to run instead; the plugin's README says what it leaves out)."""
