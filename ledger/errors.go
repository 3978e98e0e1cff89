package ledger

import "errors"

// Errors returned by ledger operations. Each is returned wrapped with detail;
// test with errors.Is. Their precedence is given in docs/ledger.md ("Errors,
// in order of precedence").
var (
	// ErrInvalidInput is returned before any storage is touched when an
	// argument is malformed: an empty or oversized key, sender, capability,
	// customer or job ID; a control character in one; a negative amount or
	// one above MaxAmount; a negative TTL or grace.
	ErrInvalidInput = errors.New("ledger: invalid input")

	// ErrIdempotencyConflict is returned when an idempotency key was already
	// used by an operation with different inputs (another account, amount or
	// kind). The earlier operation stands.
	ErrIdempotencyConflict = errors.New("ledger: idempotency key reused with different inputs")

	// ErrNotFound is returned when a Credit, Charge or CloseJob names a job
	// that does not exist for that sender, or a Charge names a pool that was
	// never created, or a read names an unknown account.
	ErrNotFound = errors.New("ledger: account not found")

	// ErrJobMismatch is returned by OpenJob when the job already exists under
	// another capability or customer.
	ErrJobMismatch = errors.New("ledger: job exists with another capability or customer")

	// ErrJobClosed is returned by Credit, Charge and OpenJob on a job that was
	// closed or swept as expired.
	ErrJobClosed = errors.New("ledger: job is closed")

	// ErrJobExpired is returned by Credit, Charge and OpenJob on an open job
	// whose TTL has run out; the sweeper will release it.
	ErrJobExpired = errors.New("ledger: job expired")

	// ErrInsufficientFunds is returned when OpenJob cannot bring the hold to
	// its minimum, or a Charge would take a balance below −grace.
	ErrInsufficientFunds = errors.New("ledger: insufficient funds")

	// ErrAmountOverflow is returned when a balance would leave ±MaxAmount.
	ErrAmountOverflow = errors.New("ledger: amount overflow")

	// ErrClosed is returned by operations on a Ledger after Close.
	ErrClosed = errors.New("ledger: closed")
)
