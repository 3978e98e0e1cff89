package pm

import (
	"errors"
	"fmt"

	"github.com/ethereum/go-ethereum/common"
)

// Errors a recipient reports for a ticket or a payment. Where go-livepeer has
// an error for the same condition the text is the same, so that peers and
// operators see familiar messages. Validate wraps the fatal ones in a
// *FatalError; compare with errors.Is.
var (
	// ErrInvalidRecipient is fatal: the ticket's recipient is missing, not 20
	// bytes, or not this recipient's address.
	ErrInvalidRecipient = errors.New("invalid ticket recipient")
	// ErrInvalidSender is fatal: the payment's sender is not 20 bytes or is
	// the zero address while the payment carries ticket parameters.
	ErrInvalidSender = errors.New("invalid ticket sender")
	// ErrMissingSender is fatal: the payment carries ticket parameters but no
	// sender.
	ErrMissingSender = errors.New("could not find sender for payment")
	// ErrInvalidRecipientRand is fatal: recomputing recipientRand from the
	// payment's parameters does not give the ticket's recipientRandHash. Any
	// change to the seed, sender, face value, win probability, expiration
	// block, price or expiration params gives this error, as do parameters
	// issued with another secret.
	ErrInvalidRecipientRand = errors.New("invalid recipientRand for ticket recipientRandHash")
	// ErrInvalidExpectedPrice is fatal: the payment's expected_price is
	// missing while it carries tickets, or has pixelsPerUnit <= 0 or a
	// negative pricePerUnit.
	ErrInvalidExpectedPrice = errors.New("invalid expected price sent with payment")
	// ErrPriceBelowQuote is fatal: the payment declares a price below the
	// quote the caller passed to Validate (docs/protocol.md §7.7).
	ErrPriceBelowQuote = errors.New("expected price is below the quoted price")
	// ErrMalformedPayment is fatal: the payment is structurally unusable
	// (tickets without ticket parameters, a hash that is not 32 bytes, a
	// negative creation round).
	ErrMalformedPayment = errors.New("malformed payment")
	// ErrValueOutOfRange is returned when an integer that must fit a uint256
	// is negative or at least 2^256 (fatal when it comes from a payment).
	ErrValueOutOfRange = errors.New("value out of uint256 range")

	// ErrInvalidSignature is non-fatal: the ticket's signature is not 65
	// bytes, has a high s or a v other than 27/28, or does not recover to the
	// payment's sender. The ticket earns no credit.
	ErrInvalidSignature = errors.New("invalid ticket signature")
	// ErrTicketParamsExpired is non-fatal on the recipient: the parameters'
	// expiration block is at or below the last seen L1 block. A sender
	// returns it from CreateTicketBatch when the parameters are within one
	// block of expiring.
	ErrTicketParamsExpired = errors.New("TicketParams expired")
	// ErrNonceSeen is non-fatal: the nonce was already used under the same
	// recipientRandHash. Returned wrapped in a *NonceError.
	ErrNonceSeen = errors.New("invalid ticket senderNonce: already seen")
	// ErrTooManyNonces is non-fatal: the session already holds the maximum
	// number of distinct nonces. Returned wrapped in a *NonceError.
	ErrTooManyNonces = errors.New("invalid ticket senderNonce: too many values")

	// ErrNonceBook is returned (wrapping the store's error) by
	// Validation.Settle when the NonceBook fails or answers with the wrong
	// number of verdicts; the payment's outcome is then unknown.
	ErrNonceBook = errors.New("pm: nonce book failed")

	// ErrInsufficientReserve is returned by Recipient.TicketParams when the
	// sender's max float cannot back a face value of at least the ticket EV
	// (or of the redemption cost).
	ErrInsufficientReserve = errors.New("insufficient sender reserve")
	// ErrInvalidPrice is returned when a price is nil or negative.
	ErrInvalidPrice = errors.New("pm: invalid price")

	// ErrNoSigner is returned by Sender.CreateTicketBatch when tickets are
	// requested from a sender that has no key (offchain).
	ErrNoSigner = errors.New("pm: no ticket signer available")
	// ErrNoTicketParams is returned by Sender.StartSession for nil params.
	ErrNoTicketParams = errors.New("pm: no ticket params")
	// ErrMissingExpirationParams is returned by Sender.StartSession when the
	// params carry no expiration_params (field 7), which every payment must
	// echo.
	ErrMissingExpirationParams = errors.New("pm: ticket params have no expiration params")
	// ErrUnknownSession is returned for a session ID that was never started
	// or has ended.
	ErrUnknownSession = errors.New("pm: unknown ticket session")
	// ErrTooManySessions is returned by Sender.StartSession when the sender
	// already holds SenderConfig.MaxSessions sessions.
	ErrTooManySessions = errors.New("pm: too many ticket sessions")
	// ErrSessionExhausted is returned by Sender.CreateTicketBatch when the
	// batch would use nonces beyond the recipient's per-session cap; the
	// caller must fetch fresh ticket params.
	ErrSessionExhausted = errors.New("pm: ticket session needs fresh params")
	// ErrFaceValueTooLow is returned by Sender.CreateTicketBatch when the
	// ticket EV is not below the face value.
	ErrFaceValueTooLow = errors.New("ticket faceValue too low")
	// ErrTicketEVTooHigh is returned by Sender.CreateTicketBatch when the
	// ticket EV exceeds SenderConfig.MaxTicketEV.
	ErrTicketEVTooHigh = errors.New("ticket EV too high")
	// ErrTotalEVTooHigh is returned by Sender.CreateTicketBatch when the
	// batch's total EV exceeds SenderConfig.MaxTotalEV.
	ErrTotalEVTooHigh = errors.New("total ticket EV too high")
	// ErrZeroEV is returned by TicketsNeeded when credit is needed but the
	// ticket EV is not positive.
	ErrZeroEV = errors.New("pm: ticket EV is zero")
	// ErrTicketCount is returned for a negative ticket count or one too
	// large to represent.
	ErrTicketCount = errors.New("pm: invalid ticket count")
)

// FatalError marks an error that rejects a whole payment: no ticket in it is
// credited. Every error Recipient.Validate returns is a *FatalError.
type FatalError struct {
	Err error
}

func (e *FatalError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *FatalError) Unwrap() error { return e.Err }

// IsFatal reports whether err is, or wraps, a *FatalError.
func IsFatal(err error) bool {
	var f *FatalError
	return errors.As(err, &f)
}

func fatal(err error) error { return &FatalError{Err: err} }

func fatalf(sentinel error, format string, args ...any) error {
	return &FatalError{Err: fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)}
}

// NonceError is the non-fatal error for a ticket whose nonce a NonceBook
// rejected. Its text matches go-livepeer's, e.g.
// "invalid ticket senderNonce: already seen sender=0x2c75…5c23 nonce=3".
// errors.Is matches ErrNonceSeen or ErrTooManyNonces.
type NonceError struct {
	Sender  common.Address
	Nonce   uint32
	Verdict NonceVerdict
}

func (e *NonceError) base() error {
	if e.Verdict == NonceTooMany {
		return ErrTooManyNonces
	}
	return ErrNonceSeen
}

func (e *NonceError) Error() string {
	return fmt.Sprintf("%v sender=%v nonce=%d", e.base(), e.Sender, e.Nonce)
}

// Unwrap returns ErrNonceSeen or ErrTooManyNonces.
func (e *NonceError) Unwrap() error { return e.base() }
