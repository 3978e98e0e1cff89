// Package ethsig is byoc's one home for Ethereum signatures: the EIP-191
// personal-sign digest, signing with a local secp256k1 key (raw hex or a
// go-ethereum keystore file), and recovering and verifying signatures under
// the rules every Livepeer node applies (65 bytes r‖s‖v, s in the lower half
// of the curve order, v = 27 or 28).
//
// Both pm (ticket signatures) and wire (BYOC job and sender signatures) use
// it, and so will a remote signer, which is why it is a package of its own
// below both rather than part of either. The name says what it holds,
// Ethereum signatures, and is not a word callers use for variables (sig,
// signer), so call sites read ethsig.Verify and ethsig.Signer.
package ethsig
