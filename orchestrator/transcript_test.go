package orchestrator_test

import (
	"testing"

	"byoc/internal/testnet"
)

// The replays live in internal/testnet (the PR #3914 suite runs them too);
// see testnet.ReplayOffchain and testnet.ReplayPaid for what they check.

func TestReplayOffchainTranscript(t *testing.T) { testnet.ReplayOffchain(t) }

func TestReplayPaidTranscript(t *testing.T) { testnet.ReplayPaid(t) }
