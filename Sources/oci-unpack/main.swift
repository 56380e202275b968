import OCIUnpackCLI

// Local images only: a docker:// reference is handed to oci-unpack-registry, so that this
// executable does not carry (and every start does not pay for) the HTTP stack.
RegistryHandOff.execIfNeeded()
runCommandLine()
