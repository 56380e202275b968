import OCIUnpackCLI
import Registries

// oci-unpack with registry access (AsyncHTTPClient, swift-nio): oci-unpack runs it for docker://
// references; it takes every other image as well.
CommandLineSetup.registries = RegistryClientAccess()
runCommandLine()
