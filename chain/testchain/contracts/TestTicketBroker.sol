// SPDX-License-Identifier: MIT
// A TicketBroker-compatible contract for byoc's tests, written for this
// repository: the ABI subset an orchestrator and a sender use, and
// redeemWinningTicket's checks in the deployed contract's order with its
// revert strings, including the insufficient-funds revert (a ticket the
// sender cannot cover is not consumed) and the still-open partial payout
// when the recipient's share of the reserve is short (docs/chain.md and
// docs/protocol.md §12). Fees stay in this contract, credited to the
// recipient; the BondingManager's active set is a test hook (setTranscoder,
// setPoolSize), as are pausing and round block hashes (the RoundsManager).
pragma solidity 0.8.37;

interface IRoundsManager {
    function currentRound() external view returns (uint256);
    function currentRoundInitialized() external view returns (bool);
    function blockHashForRound(uint256 _round) external view returns (bytes32);
}

contract TestTicketBroker {
    struct Ticket {
        address recipient;
        address sender;
        uint256 faceValue;
        uint256 winProb;
        uint256 senderNonce;
        bytes32 recipientRandHash;
        bytes auxData;
    }

    struct Sender {
        uint256 deposit;
        uint256 withdrawRound;
    }

    struct ReserveInfo {
        uint256 fundsRemaining;
        uint256 claimedInCurrentRound;
    }

    struct Reserve {
        uint256 fundsRemaining;
        mapping(uint256 => uint256) claimedForRound;
        mapping(uint256 => mapping(address => uint256)) claimedByInRound;
    }

    event DepositFunded(address indexed sender, uint256 amount);
    event ReserveFunded(address indexed reserveHolder, uint256 amount);
    event ReserveClaimed(address indexed reserveHolder, address claimant, uint256 amount);
    event WinningTicketRedeemed(
        address indexed sender,
        address indexed recipient,
        uint256 faceValue,
        uint256 winProb,
        uint256 senderNonce,
        uint256 recipientRand,
        bytes auxData
    );
    event WinningTicketTransfer(address indexed sender, address indexed recipient, uint256 amount);
    event Unlock(address indexed sender, uint256 startRound, uint256 endRound);
    event UnlockCancelled(address indexed sender);
    event Withdrawal(address indexed sender, uint256 deposit, uint256 reserve);

    IRoundsManager public roundsManager;
    uint256 public unlockPeriod;
    uint256 public ticketValidityPeriod;

    mapping(bytes32 => bool) public usedTickets;
    mapping(address => Sender) internal senders;
    mapping(address => Reserve) internal reserves;

    // Test hooks' state.
    bool public paused;
    uint256 public poolSize;
    mapping(address => bool) public isActiveTranscoder;
    mapping(address => uint256) public feesOf;

    constructor(address _roundsManager, uint256 _unlockPeriod, uint256 _ticketValidityPeriod) {
        roundsManager = IRoundsManager(_roundsManager);
        unlockPeriod = _unlockPeriod;
        ticketValidityPeriod = _ticketValidityPeriod;
    }

    // ---- test hooks ----

    function setPaused(bool _paused) external {
        paused = _paused;
    }

    function setPoolSize(uint256 _size) external {
        poolSize = _size;
    }

    function setTranscoder(address _addr, bool _active) external {
        isActiveTranscoder[_addr] = _active;
    }

    // ---- funding ----

    function fundDeposit() external payable {
        processDeposit(msg.sender, msg.value);
    }

    function fundReserve() external payable {
        processReserve(msg.sender, msg.value);
    }

    function fundDepositAndReserve(uint256 _depositAmount, uint256 _reserveAmount) external payable {
        fundDepositAndReserveFor(msg.sender, _depositAmount, _reserveAmount);
    }

    function fundDepositAndReserveFor(address _addr, uint256 _depositAmount, uint256 _reserveAmount) public payable {
        require(
            msg.value == _depositAmount + _reserveAmount,
            "msg.value does not equal sum of deposit amount and reserve amount"
        );
        processDeposit(_addr, _depositAmount);
        processReserve(_addr, _reserveAmount);
    }

    function processDeposit(address _addr, uint256 _amount) internal {
        require(!paused, "system is paused");
        Sender storage s = senders[_addr];
        s.deposit += _amount;
        if (unlockInProgress(s)) {
            s.withdrawRound = 0;
            emit UnlockCancelled(_addr);
        }
        emit DepositFunded(_addr, _amount);
    }

    function processReserve(address _addr, uint256 _amount) internal {
        require(!paused, "system is paused");
        Sender storage s = senders[_addr];
        reserves[_addr].fundsRemaining += _amount;
        if (unlockInProgress(s)) {
            s.withdrawRound = 0;
            emit UnlockCancelled(_addr);
        }
        emit ReserveFunded(_addr, _amount);
    }

    // ---- unlocking ----

    function unlock() external {
        Sender storage s = senders[msg.sender];
        require(s.deposit > 0 || reserves[msg.sender].fundsRemaining > 0, "sender deposit and reserve are zero");
        require(!unlockInProgress(s), "unlock already initiated");
        uint256 round = roundsManager.currentRound();
        s.withdrawRound = round + unlockPeriod;
        emit Unlock(msg.sender, round, s.withdrawRound);
    }

    function cancelUnlock() external {
        Sender storage s = senders[msg.sender];
        require(unlockInProgress(s), "no unlock request in progress");
        s.withdrawRound = 0;
        emit UnlockCancelled(msg.sender);
    }

    function withdraw() external {
        Sender storage s = senders[msg.sender];
        uint256 deposit = s.deposit;
        uint256 reserve = reserves[msg.sender].fundsRemaining;
        require(deposit > 0 || reserve > 0, "sender deposit and reserve are zero");
        require(!isLocked(s), "account is locked");
        s.deposit = 0;
        s.withdrawRound = 0;
        reserves[msg.sender].fundsRemaining = 0;
        emit Withdrawal(msg.sender, deposit, reserve);
        (bool ok, ) = payable(msg.sender).call{value: deposit + reserve}("");
        require(ok, "withdrawal failed");
    }

    function isUnlockInProgress(address _sender) external view returns (bool) {
        return unlockInProgress(senders[_sender]);
    }

    function unlockInProgress(Sender storage s) internal view returns (bool) {
        return s.withdrawRound > 0 && s.withdrawRound > roundsManager.currentRound();
    }

    function isLocked(Sender storage s) internal view returns (bool) {
        return s.withdrawRound == 0 || roundsManager.currentRound() < s.withdrawRound;
    }

    // ---- views ----

    function getSenderInfo(address _sender) external view returns (Sender memory sender, ReserveInfo memory reserve) {
        sender = senders[_sender];
        Reserve storage r = reserves[_sender];
        reserve = ReserveInfo(r.fundsRemaining, r.claimedForRound[roundsManager.currentRound()]);
    }

    function claimableReserve(address _reserveHolder, address _claimant) public view returns (uint256) {
        if (!isActiveTranscoder[_claimant] || poolSize == 0) {
            return 0;
        }
        Reserve storage r = reserves[_reserveHolder];
        uint256 round = roundsManager.currentRound();
        uint256 allocation = (r.fundsRemaining + r.claimedForRound[round]) / poolSize;
        uint256 claimed = r.claimedByInRound[round][_claimant];
        return claimed >= allocation ? 0 : allocation - claimed;
    }

    function claimedReserve(address _reserveHolder, address _claimant) external view returns (uint256) {
        return reserves[_reserveHolder].claimedByInRound[roundsManager.currentRound()][_claimant];
    }

    function getTicketHash(Ticket memory _ticket) public pure returns (bytes32) {
        return keccak256(
            abi.encodePacked(
                _ticket.recipient,
                _ticket.sender,
                _ticket.faceValue,
                _ticket.winProb,
                _ticket.senderNonce,
                _ticket.recipientRandHash,
                _ticket.auxData
            )
        );
    }

    // ---- redemption ----

    function redeemWinningTicket(Ticket memory _ticket, bytes memory _sig, uint256 _recipientRand) public {
        require(!paused, "system is paused");
        require(roundsManager.currentRoundInitialized(), "current round is not initialized");
        require(_ticket.recipient != address(0), "ticket recipient is null address");
        require(_ticket.sender != address(0), "ticket sender is null address");
        requireValidTicketAuxData(_ticket.auxData);

        bytes32 ticketHash = getTicketHash(_ticket);
        require(keccak256(abi.encodePacked(_recipientRand)) == _ticket.recipientRandHash,
            "recipientRand does not match recipientRandHash");
        require(!usedTickets[ticketHash], "ticket is used");
        require(recoverSigner(ticketHash, _sig) == _ticket.sender, "invalid signature over ticket hash");
        require(uint256(keccak256(abi.encodePacked(_sig, _recipientRand))) < _ticket.winProb, "ticket did not win");

        Sender storage s = senders[_ticket.sender];
        require(isLocked(s), "sender is unlocked");
        require(s.deposit + reserves[_ticket.sender].fundsRemaining >= _ticket.faceValue,
            "sender deposit and reserve insufficient to cover ticket face value");

        usedTickets[ticketHash] = true;

        uint256 amount;
        if (_ticket.faceValue > s.deposit) {
            uint256 claimed = claimFromReserve(_ticket.sender, _ticket.recipient, _ticket.faceValue - s.deposit);
            amount = s.deposit + claimed;
            s.deposit = 0;
        } else {
            amount = _ticket.faceValue;
            s.deposit -= _ticket.faceValue;
        }
        if (amount > 0) {
            require(isActiveTranscoder[_ticket.recipient], "transcoder must be registered");
            feesOf[_ticket.recipient] += amount;
            emit WinningTicketTransfer(_ticket.sender, _ticket.recipient, amount);
        }
        emit WinningTicketRedeemed(
            _ticket.sender,
            _ticket.recipient,
            _ticket.faceValue,
            _ticket.winProb,
            _ticket.senderNonce,
            _recipientRand,
            _ticket.auxData
        );
    }

    function requireValidTicketAuxData(bytes memory _auxData) internal view {
        require(_auxData.length == 64, "invalid length for ticket auxData: must be 64 bytes");
        (uint256 creationRound, bytes32 creationRoundBlockHash) = abi.decode(_auxData, (uint256, bytes32));
        bytes32 blockHash = roundsManager.blockHashForRound(creationRound);
        require(blockHash != bytes32(0), "ticket creationRound does not have a block hash");
        require(creationRoundBlockHash == blockHash, "ticket creationRoundBlockHash invalid for creationRound");
        require(creationRound + ticketValidityPeriod > roundsManager.currentRound(), "ticket is expired");
    }

    function claimFromReserve(address _holder, address _claimant, uint256 _amount) internal returns (uint256) {
        uint256 claimable = claimableReserve(_holder, _claimant);
        uint256 claimAmount = _amount > claimable ? claimable : _amount;
        if (claimAmount > 0) {
            Reserve storage r = reserves[_holder];
            uint256 round = roundsManager.currentRound();
            r.claimedForRound[round] += claimAmount;
            r.claimedByInRound[round][_claimant] += claimAmount;
            r.fundsRemaining -= claimAmount;
            emit ReserveClaimed(_holder, _claimant, claimAmount);
        }
        return claimAmount;
    }

    function recoverSigner(bytes32 _hash, bytes memory _sig) internal pure returns (address) {
        require(_sig.length == 65, "INVALID_SIGNATURE_LENGTH");
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(_sig, 32))
            s := mload(add(_sig, 64))
            v := byte(0, mload(add(_sig, 96)))
        }
        if (v < 27) {
            v += 27;
        }
        bytes32 digest = keccak256(abi.encodePacked("\x19Ethereum Signed Message:\n32", _hash));
        return ecrecover(digest, v, r, s);
    }
}
