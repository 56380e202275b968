#compdef oci-unpack

__oci-unpack_complete() {
    local -ar non_empty_completions=("${@:#(|:*)}")
    local -ar empty_completions=("${(M)@:#(|:*)}")
    _describe -V '' non_empty_completions -- empty_completions -P $'\'\''
}

__oci-unpack_custom_complete() {
    local -a completions
    completions=("${(@f)"$("${command_name}" "${@}" "${command_line[@]}")"}")
    if [[ "${#completions[@]}" -gt 1 ]]; then
        __oci-unpack_complete "${completions[@]:0:-1}"
    fi
}

__oci-unpack_cursor_index_in_current_word() {
    if [[ -z "${QIPREFIX}${IPREFIX}${PREFIX}" ]]; then
        printf 0
    else
        printf %s "${#${(z)LBUFFER}[-1]}"
    fi
}

_oci-unpack() {
    emulate -RL zsh -G
    setopt extendedglob nullglob numericglobsort
    unsetopt aliases banghist

    local -xr SAP_SHELL=zsh
    local -x SAP_SHELL_VERSION
    SAP_SHELL_VERSION="$(builtin emulate zsh -c 'printf %s "${ZSH_VERSION}"')"
    local -r SAP_SHELL_VERSION

    local context state state_descr line
    local -A opt_args

    local -r command_name="${words[1]}"
    local -ar command_line=("${words[@]}")
    local -ir current_word_index="$((CURRENT - 1))"

    local -i ret=1
    local -ar arg_specs=(
        '--version[Show the version.]'
        '(-h --help)'{-h,--help}'[Show help information.]'
        '(-): :->command'
        '(-)*:: :->arg'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0
    case "${state}" in
    command)
        local -ar subcommands=(
            'unpack:Unpack an image into an OCI runtime bundle: BUNDLE/config.json and BUNDLE/rootfs.'
            'inspect:Show how an image resolves: indexes walked, candidates, chosen manifest and layers.'
            'verify-variants:Prove that an index'\''s variants of one image (gzip, zstd, …) yield the same filesystem.'
            'tree-digest:The digest (or the whole canonical listing) of an image'\''s flattened tree or of a directory.'
            'remove:Remove a bundle: unmount a store bundle'\''s rootfs, remove the directory, drop its store record.'
            'store:Inspect and prune a layer store (--store DIR).'
            'help:Show subcommand help information.'
        )
        _describe -V subcommand subcommands && ret=0
        ;;
    arg)
        case "${words[1]}" in
        unpack|inspect|verify-variants|tree-digest|remove|store|help)
            "_oci-unpack_${words[1]}" && ret=0
            ;;
        esac
        ;;
    esac

    return "${ret}"
}

_oci-unpack_unpack() {
    local -i ret=1
    local -ar arg_specs=(
        '--platform[Platform as os/arch\[/variant\] (default\: this machine'\''s); a bare architecture (arm64) means linux/arm64.]:platform:'
        '--os[The platform'\''s OS instead of --platform'\''s (or this machine'\''s), as podman'\''s --os.]:os:'
        '--arch[The platform'\''s architecture instead of --platform'\''s (or this machine'\''s); without --variant, no variant.]:arch:'
        '--variant[The platform'\''s CPU variant (v7, v8), as podman'\''s --variant.]:variant:'
        '--prefer-compression[Order of preferred layer compressions among equal platform matches, or first\: the first usable entry in index order, as image-index.md describes (see docs/images.md).]:prefer-compression:'
        '--alternatives[Read alternative descriptors\: an index entry or a layer whose annotation names an equivalent manifest or layer in another compression (not standardised; see docs/images.md).]'
        '--alternative-annotation[The annotation key that names alternatives (default zstd-compressed-alternative); implies --alternatives.]:alternative-annotation:'
        '--log-level[trace, debug, info, notice, warning, error or critical.]:log-level:'
        '--creds[USER\[\:PASSWORD\] for the registry (never printed).]:creds:'
        '--authfile[An auth file (containers-auth.json) instead of the usual ones.]:authfile:'
        '--tls-verify[false\: skip TLS verification and allow plain HTTP for this run (default true).]:tls-verify:'
        '--cert-dir[CA certificates (*.crt) and client pairs (*.cert, *.key).]:cert-dir:'
        '--cache[Keep pulled blobs in this OCI layout, and take them from it first (docker\:// images).]:cache:'
        '--cache-max-size[Bound on the cached blobs'\'' bytes (K, M, G, T suffixes); least recently used go first.]:cache-max-size:'
        '--pull[With --cache\: missing (a tag the cache recorded is used without asking the registry), always (ask the registry what a tag names now), never (the cache only).]:pull:'
        '--speed-limit[A transfer slower than this many bytes/s over --speed-time seconds is retried (resumed); 0\: off.]:speed-limit:'
        '--speed-time[The window for --speed-limit, in seconds.]:speed-time:'
        '--command-timeout[Everything that waits on the registry must end within this time (90s, 10m, 1h; seconds by default).]:command-timeout:'
        '--registries-conf[A registries.conf (mirrors, locations, insecure and blocked registries) instead of $CONTAINERS_REGISTRIES_CONF or the user'\''s and system'\''s files (see docs/images.md).]:registries-conf:'
        '--hosts-dir[containerd'\''s registry host configuration (HOST/hosts.toml\: mirrors such as Spegel, CAs, headers) instead of /etc/containerd/certs.d (see docs/images.md).]:hosts-dir:'
        '--retry-times[Times one registry request is tried again after a failed connection, a 429 or a 5xx (0\: once).]:retry-times:'
        '--retry-delay[A fixed pause before each retry (2s, 1m); unset or 0\: 0.5 s doubling to 8 s.]:retry-delay:'
        '--policy[The signature policy (containers-policy.json) instead of $HOME/.config/containers/policy.json or /etc/containers/policy.json.]:policy:'
        '--insecure-policy[Apply no signature policy\: accept every image.]'
        '--require-policy[Refuse to run when no policy file exists (by default no policy means no check).]'
        '--registries.d[Where signature lookasides are configured, instead of the user'\''s or /etc/containers/registries.d.]:registries.d:'
        '--force[Replace an existing non-empty BUNDLE (only after the new one is complete).]'
        '(--quiet -q)'{--quiet,-q}'[No progress output.]'
        '--template[A runtime-spec template for config.json (default\: bundle-templates/default.json, or rootless.json when rootless; both built in).]:template:'
        '*--env[NAME=VALUE to add to the environment (repeatable).]:env:'
        '--user[Run as this user instead of the image'\''s User (uid, name, uid\:gid, name\:group).]:user:'
        '--workdir[Working directory instead of the image'\''s WorkingDir.]:workdir:'
        '*--entrypoint[Entrypoint instead of the image'\''s (repeat for each argument).]:entrypoint:'
        '--gzip-decoder[isal (default, fast) or zlib (the reference implementation).]:gzip-decoder:'
        '*--limit[NAME=VALUE\: change a resource limit (repeatable; see docs/limits.md).]:limit:'
        '--rootless[Unpack without privileges (the default when not run as root)\: files belong to you, other owners are recorded in user.rootlesscontainers xattrs as umoci records them, and config.json maps you to root in a user namespace.]'
        '*--uid-map[CONTAINER\:HOST\:SIZE\: give files the host uid their owner stands for, and write the map into config.json with a user namespace (repeatable; root only).]:uid-map:'
        '*--gid-map[CONTAINER\:HOST\:SIZE\: the same for groups (repeatable; either map defaults to the other).]:gid-map:'
        '--userns[auto\: as an ordinary user, unpack as root in a user namespace that maps you to root and your subordinate ids (/etc/subuid, /etc/subgid) from 1, through newuidmap and newgidmap, as podman does; owners are real (shifted) on disk and config.json carries the maps.]:userns:'
        '--map-unmapped[What an id-mapped unpack does with ids no map holds\: refuse (default) or overflow (nobody).]:map-unmapped:'
        '--store[A layer store (created on first use)\: each layer is unpacked into it once, and BUNDLE/rootfs             is an overlay of the image'\''s layers with the bundle'\''s own upper directory (needs root, or a             user namespace with --no-mount).]:store:'
        '--no-mount[With --store\: write the bundle without mounting rootfs; BUNDLE/rootfs.mount.json says what to mount.]'
        '--verifier-dir[Run every executable in DIR for the image before any layer is fetched (containerd'\''s image verifiers); all must exit 0.]:verifier-dir:'
        '--verifier-timeout[Seconds each --verifier-dir program may take.]:verifier-timeout:'
        '--json[Print the documented JSON object (docs/unpacking.md) instead of text.]'
        ':image:'
        ':bundle:'
        '*:command:'
        '--version[Show the version.]'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_oci-unpack_inspect() {
    local -i ret=1
    local -ar arg_specs=(
        '--platform[Platform as os/arch\[/variant\] (default\: this machine'\''s); a bare architecture (arm64) means linux/arm64.]:platform:'
        '--os[The platform'\''s OS instead of --platform'\''s (or this machine'\''s), as podman'\''s --os.]:os:'
        '--arch[The platform'\''s architecture instead of --platform'\''s (or this machine'\''s); without --variant, no variant.]:arch:'
        '--variant[The platform'\''s CPU variant (v7, v8), as podman'\''s --variant.]:variant:'
        '--prefer-compression[Order of preferred layer compressions among equal platform matches, or first\: the first usable entry in index order, as image-index.md describes (see docs/images.md).]:prefer-compression:'
        '--alternatives[Read alternative descriptors\: an index entry or a layer whose annotation names an equivalent manifest or layer in another compression (not standardised; see docs/images.md).]'
        '--alternative-annotation[The annotation key that names alternatives (default zstd-compressed-alternative); implies --alternatives.]:alternative-annotation:'
        '--log-level[trace, debug, info, notice, warning, error or critical.]:log-level:'
        '--creds[USER\[\:PASSWORD\] for the registry (never printed).]:creds:'
        '--authfile[An auth file (containers-auth.json) instead of the usual ones.]:authfile:'
        '--tls-verify[false\: skip TLS verification and allow plain HTTP for this run (default true).]:tls-verify:'
        '--cert-dir[CA certificates (*.crt) and client pairs (*.cert, *.key).]:cert-dir:'
        '--cache[Keep pulled blobs in this OCI layout, and take them from it first (docker\:// images).]:cache:'
        '--cache-max-size[Bound on the cached blobs'\'' bytes (K, M, G, T suffixes); least recently used go first.]:cache-max-size:'
        '--pull[With --cache\: missing (a tag the cache recorded is used without asking the registry), always (ask the registry what a tag names now), never (the cache only).]:pull:'
        '--speed-limit[A transfer slower than this many bytes/s over --speed-time seconds is retried (resumed); 0\: off.]:speed-limit:'
        '--speed-time[The window for --speed-limit, in seconds.]:speed-time:'
        '--command-timeout[Everything that waits on the registry must end within this time (90s, 10m, 1h; seconds by default).]:command-timeout:'
        '--registries-conf[A registries.conf (mirrors, locations, insecure and blocked registries) instead of $CONTAINERS_REGISTRIES_CONF or the user'\''s and system'\''s files (see docs/images.md).]:registries-conf:'
        '--hosts-dir[containerd'\''s registry host configuration (HOST/hosts.toml\: mirrors such as Spegel, CAs, headers) instead of /etc/containerd/certs.d (see docs/images.md).]:hosts-dir:'
        '--retry-times[Times one registry request is tried again after a failed connection, a 429 or a 5xx (0\: once).]:retry-times:'
        '--retry-delay[A fixed pause before each retry (2s, 1m); unset or 0\: 0.5 s doubling to 8 s.]:retry-delay:'
        '--policy[The signature policy (containers-policy.json) instead of $HOME/.config/containers/policy.json or /etc/containers/policy.json.]:policy:'
        '--insecure-policy[Apply no signature policy\: accept every image.]'
        '--require-policy[Refuse to run when no policy file exists (by default no policy means no check).]'
        '--registries.d[Where signature lookasides are configured, instead of the user'\''s or /etc/containers/registries.d.]:registries.d:'
        '--json[Print the documented JSON object (docs/inspect-json.md) instead of text.]'
        ':image:'
        '--version[Show the version.]'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_oci-unpack_verify-variants() {
    local -i ret=1
    local -ar arg_specs=(
        '--platform[Verify this platform'\''s variants (os/arch\[/variant\]; default\: this machine'\''s).]:platform:'
        '--all-platforms[Verify the variants of every platform.]'
        '--json[Print the documented JSON object (docs/verify-variants.md) instead of text.]'
        '--max-differences[Differing paths to name per variant (all are counted).]:max-differences:'
        '--ignore-mtime[Leave modification times out of listings and comparisons.]'
        '--gzip-decoder[isal (default, fast) or zlib (the reference implementation).]:gzip-decoder:'
        '*--limit[NAME=VALUE\: change a resource limit (repeatable; see docs/limits.md).]:limit:'
        '--creds[USER\[\:PASSWORD\] for the registry (never printed).]:creds:'
        '--authfile[An auth file (containers-auth.json) instead of the usual ones.]:authfile:'
        '--tls-verify[false\: skip TLS verification and allow plain HTTP for this run (default true).]:tls-verify:'
        '--cert-dir[CA certificates (*.crt) and client pairs (*.cert, *.key).]:cert-dir:'
        '--cache[Keep pulled blobs in this OCI layout, and take them from it first (docker\:// images).]:cache:'
        '--cache-max-size[Bound on the cached blobs'\'' bytes (K, M, G, T suffixes); least recently used go first.]:cache-max-size:'
        '--pull[With --cache\: missing (a tag the cache recorded is used without asking the registry), always (ask the registry what a tag names now), never (the cache only).]:pull:'
        '--speed-limit[A transfer slower than this many bytes/s over --speed-time seconds is retried (resumed); 0\: off.]:speed-limit:'
        '--speed-time[The window for --speed-limit, in seconds.]:speed-time:'
        '--command-timeout[Everything that waits on the registry must end within this time (90s, 10m, 1h; seconds by default).]:command-timeout:'
        '--registries-conf[A registries.conf (mirrors, locations, insecure and blocked registries) instead of $CONTAINERS_REGISTRIES_CONF or the user'\''s and system'\''s files (see docs/images.md).]:registries-conf:'
        '--hosts-dir[containerd'\''s registry host configuration (HOST/hosts.toml\: mirrors such as Spegel, CAs, headers) instead of /etc/containerd/certs.d (see docs/images.md).]:hosts-dir:'
        '--retry-times[Times one registry request is tried again after a failed connection, a 429 or a 5xx (0\: once).]:retry-times:'
        '--retry-delay[A fixed pause before each retry (2s, 1m); unset or 0\: 0.5 s doubling to 8 s.]:retry-delay:'
        '--alternatives[Read alternative descriptors\: an index entry or a layer whose annotation names an equivalent manifest or layer in another compression (not standardised; see docs/images.md).]'
        '--alternative-annotation[The annotation key that names alternatives (default zstd-compressed-alternative); implies --alternatives.]:alternative-annotation:'
        '--log-level[trace, debug, info, notice, warning, error or critical.]:log-level:'
        ':image:'
        '--version[Show the version.]'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_oci-unpack_tree-digest() {
    local -i ret=1
    local -ar arg_specs=(
        '--platform[Platform as os/arch\[/variant\] (default\: this machine'\''s); a bare architecture (arm64) means linux/arm64.]:platform:'
        '--os[The platform'\''s OS instead of --platform'\''s (or this machine'\''s), as podman'\''s --os.]:os:'
        '--arch[The platform'\''s architecture instead of --platform'\''s (or this machine'\''s); without --variant, no variant.]:arch:'
        '--variant[The platform'\''s CPU variant (v7, v8), as podman'\''s --variant.]:variant:'
        '--prefer-compression[Order of preferred layer compressions among equal platform matches, or first\: the first usable entry in index order, as image-index.md describes (see docs/images.md).]:prefer-compression:'
        '--alternatives[Read alternative descriptors\: an index entry or a layer whose annotation names an equivalent manifest or layer in another compression (not standardised; see docs/images.md).]'
        '--alternative-annotation[The annotation key that names alternatives (default zstd-compressed-alternative); implies --alternatives.]:alternative-annotation:'
        '--log-level[trace, debug, info, notice, warning, error or critical.]:log-level:'
        '--ignore-mtime[Leave modification times out of listings and comparisons.]'
        '--gzip-decoder[isal (default, fast) or zlib (the reference implementation).]:gzip-decoder:'
        '*--limit[NAME=VALUE\: change a resource limit (repeatable; see docs/limits.md).]:limit:'
        '--creds[USER\[\:PASSWORD\] for the registry (never printed).]:creds:'
        '--authfile[An auth file (containers-auth.json) instead of the usual ones.]:authfile:'
        '--tls-verify[false\: skip TLS verification and allow plain HTTP for this run (default true).]:tls-verify:'
        '--cert-dir[CA certificates (*.crt) and client pairs (*.cert, *.key).]:cert-dir:'
        '--cache[Keep pulled blobs in this OCI layout, and take them from it first (docker\:// images).]:cache:'
        '--cache-max-size[Bound on the cached blobs'\'' bytes (K, M, G, T suffixes); least recently used go first.]:cache-max-size:'
        '--pull[With --cache\: missing (a tag the cache recorded is used without asking the registry), always (ask the registry what a tag names now), never (the cache only).]:pull:'
        '--speed-limit[A transfer slower than this many bytes/s over --speed-time seconds is retried (resumed); 0\: off.]:speed-limit:'
        '--speed-time[The window for --speed-limit, in seconds.]:speed-time:'
        '--command-timeout[Everything that waits on the registry must end within this time (90s, 10m, 1h; seconds by default).]:command-timeout:'
        '--registries-conf[A registries.conf (mirrors, locations, insecure and blocked registries) instead of $CONTAINERS_REGISTRIES_CONF or the user'\''s and system'\''s files (see docs/images.md).]:registries-conf:'
        '--hosts-dir[containerd'\''s registry host configuration (HOST/hosts.toml\: mirrors such as Spegel, CAs, headers) instead of /etc/containerd/certs.d (see docs/images.md).]:hosts-dir:'
        '--retry-times[Times one registry request is tried again after a failed connection, a 429 or a 5xx (0\: once).]:retry-times:'
        '--retry-delay[A fixed pause before each retry (2s, 1m); unset or 0\: 0.5 s doubling to 8 s.]:retry-delay:'
        '--rootfs[List this directory (an unpacked rootfs) instead of, or to compare with, IMAGE.]:rootfs:'
        '--listing[Print the canonical listing instead of its digest.]'
        ':image:'
        '--version[Show the version.]'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_oci-unpack_remove() {
    local -i ret=1
    local -ar arg_specs=(
        ':bundle:'
        '--version[Show the version.]'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_oci-unpack_store() {
    local -i ret=1
    local -ar arg_specs=(
        '--version[Show the version.]'
        '(-h --help)'{-h,--help}'[Show help information.]'
        '(-): :->command'
        '(-)*:: :->arg'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0
    case "${state}" in
    command)
        local -ar subcommands=(
            'list:The store'\''s layers: chain ID, size on disk, the bundles that use them.'
            'prune:Remove layers no live bundle uses (never one another process is populating or mounting).'
        )
        _describe -V subcommand subcommands && ret=0
        ;;
    arg)
        case "${words[1]}" in
        list|prune)
            "_oci-unpack_store_${words[1]}" && ret=0
            ;;
        esac
        ;;
    esac

    return "${ret}"
}

_oci-unpack_store_list() {
    local -i ret=1
    local -ar arg_specs=(
        ':store:'
        '--json[Print a JSON array instead of text.]'
        '--version[Show the version.]'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_oci-unpack_store_prune() {
    local -i ret=1
    local -ar arg_specs=(
        ':store:'
        '--version[Show the version.]'
        '(-h --help)'{-h,--help}'[Show help information.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

_oci-unpack_help() {
    local -i ret=1
    local -ar arg_specs=(
        '*:subcommands:'
        '--version[Show the version.]'
    )
    _arguments -w -s -S : "${arg_specs[@]}" && ret=0

    return "${ret}"
}

if [[ "${funcstack[1]}" = _oci-unpack ]]; then
    _oci-unpack "${@}"
else
    compdef _oci-unpack oci-unpack
fi
