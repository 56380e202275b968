import LayerApply
import OCIImage
import Resolution
import RuntimeBundle
import UnpackSystem

// The library's public vocabulary, defined in the stage modules and named here, so that
// `import OCIUnpack` is all a user needs. Everything else in those modules is package-internal.

/// The one error type: a code (with its exit status), a message naming the thing at fault, and
/// context (layer index, digest, media type, entry path).
public typealias UnpackError = OCIImage.UnpackError
/// A content digest (`sha256:…`, `sha512:…`), validated when parsed.
public typealias Digest = OCIImage.Digest
/// An image platform (`os/architecture[/variant]`, `os.version`, `os.features`).
public typealias Platform = OCIImage.Platform
/// An image reference: a layout path and a tag or digest.
public typealias ImageReference = OCIImage.ImageReference
/// A media type, with what oci-unpack can do with it.
public typealias MediaType = OCIImage.MediaType
/// A layer's compression: gzip, zstd or none.
public typealias LayerCompression = OCIImage.LayerCompression
/// A content descriptor: media type, digest, size, annotations, platform.
public typealias Descriptor = OCIImage.Descriptor
/// An image manifest.
public typealias Manifest = OCIImage.Manifest
/// An image index (or Docker manifest list).
public typealias Index = OCIImage.Index
/// An image configuration.
public typealias ImageConfig = OCIImage.ImageConfig
/// Well-known annotation keys.
public typealias AnnotationKey = OCIImage.AnnotationKey
/// Resource limits of an unpack (`--limit NAME=VALUE`).
public typealias UnpackLimits = OCIImage.UnpackLimits
/// Size caps for an image's JSON documents.
public typealias DocumentLimits = OCIImage.DocumentLimits
/// A JSON value kept exactly (a runtime-spec template).
public typealias JSONValue = OCIImage.JSONValue
/// A store of images that resolution and unpacking read from.
public typealias ImageSource = OCIImage.ImageSource
/// A pull stream of bytes, as an ``ImageSource`` returns a blob.
public typealias ByteStream = OCIImage.ByteStream
/// Text from an image made safe to print.
public typealias DisplayText = OCIImage.DisplayText
/// What to resolve for: a platform and a compression preference.
public typealias ResolutionRequest = Resolution.ResolutionRequest
/// An image resolved to one manifest, with the walk, the candidates and why each was chosen or not.
public typealias ResolvedImage = Resolution.ResolvedImage
/// Alternative descriptors named in annotations (`--alternatives`; docs/images.md).
public typealias Alternatives = Resolution.Alternatives
/// Changes to the converted configuration (what `--env`, `--user`, `--workdir`, `--entrypoint` and
/// a command after `--` give).
public typealias ConfigOverrides = RuntimeBundle.ConfigOverrides
/// A user or group id map (`CONTAINER:HOST:SIZE` ranges), as `--uid-map` and runtime-spec's
/// `linux.uidMappings` give it.
public typealias IDMap = UnpackSystem.IDMap
/// Whose ids the files of the rootfs get: the image's, rootless, or shifted through id maps.
public typealias Ownership = LayerApply.Ownership
/// Credentials and TLS for registries (`docker://` references).
public typealias RegistryOptions = OCIImage.RegistryOptions
/// What reaches registries for `docker://` references (`RegistryClientAccess`, in the
/// `OCIUnpackRegistries` library).
public typealias RegistryAccess = OCIImage.RegistryAccess
/// What an id-mapped unpack does with ids its maps do not hold.
public typealias UnmappedIDs = LayerApply.UnmappedIDs
