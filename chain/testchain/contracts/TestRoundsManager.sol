// SPDX-License-Identifier: MIT
// A minimal RoundsManager for byoc's tests: rounds of roundLength blocks,
// initialized by anyone, each storing the previous block's hash, with the
// view functions an orchestrator reads (docs/chain.md, "The test contracts").
pragma solidity 0.8.37;

contract TestRoundsManager {
    event NewRound(uint256 indexed round, bytes32 blockHash);

    uint256 public roundLength;
    uint256 public lastInitializedRound;
    mapping(uint256 => bytes32) private hashes;

    constructor(uint256 _roundLength) {
        require(_roundLength > 0, "round length must be positive");
        roundLength = _roundLength;
    }

    function blockNum() public view returns (uint256) {
        return block.number;
    }

    function currentRound() public view returns (uint256) {
        return block.number / roundLength;
    }

    function currentRoundStartBlock() external view returns (uint256) {
        return currentRound() * roundLength;
    }

    function currentRoundInitialized() public view returns (bool) {
        return lastInitializedRound == currentRound();
    }

    function blockHashForRound(uint256 _round) external view returns (bytes32) {
        return hashes[_round];
    }

    function initializeRound() external {
        uint256 round = currentRound();
        require(lastInitializedRound != round, "round already initialized");
        lastInitializedRound = round;
        bytes32 h = blockhash(block.number - 1);
        hashes[round] = h;
        emit NewRound(round, h);
    }

    // Test hook: give a round a block hash (e.g. a recorded round's).
    function setBlockHashForRound(uint256 _round, bytes32 _hash) external {
        hashes[_round] = _hash;
    }
}
