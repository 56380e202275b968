#include <gpgme.h>

/* The bit fields of a verified signature, which Swift reads through these. */
static inline int oci_gpgme_signature_wrong_key_usage(gpgme_signature_t signature) {
    return signature->wrong_key_usage;
}
static inline int oci_gpgme_subkey_can_sign(gpgme_subkey_t subkey) { return subkey->can_sign; }
static inline int oci_gpgme_subkey_revoked(gpgme_subkey_t subkey) { return subkey->revoked; }
