function __oci-unpack_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __oci-unpack_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __oci-unpack_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __oci-unpack_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __oci-unpack_parse_tokens -S
    set -l unparsed_tokens (__oci-unpack_tokens -pc)
    switch $unparsed_tokens[1]
    case 'oci-unpack'
        __oci-unpack_parse_subcommand 0 'version' 'h/help'
        switch $unparsed_tokens[1]
        case 'unpack'
            __oci-unpack_parse_subcommand -r 3 'platform=' 'os=' 'arch=' 'variant=' 'prefer-compression=' 'alternatives' 'alternative-annotation=' 'log-level=' 'creds=' 'authfile=' 'tls-verify=' 'cert-dir=' 'cache=' 'cache-max-size=' 'pull=' 'speed-limit=' 'speed-time=' 'command-timeout=' 'registries-conf=' 'hosts-dir=' 'retry-times=' 'retry-delay=' 'policy=' 'insecure-policy' 'require-policy' 'registries.d=' 'force' 'q/quiet' 'template=' 'env=+' 'user=' 'workdir=' 'entrypoint=+' 'gzip-decoder=' 'limit=+' 'rootless' 'uid-map=+' 'gid-map=+' 'userns=' 'map-unmapped=' 'store=' 'no-mount' 'verifier-dir=' 'verifier-timeout=' 'json' 'version' 'h/help'
        case 'inspect'
            __oci-unpack_parse_subcommand 1 'platform=' 'os=' 'arch=' 'variant=' 'prefer-compression=' 'alternatives' 'alternative-annotation=' 'log-level=' 'creds=' 'authfile=' 'tls-verify=' 'cert-dir=' 'cache=' 'cache-max-size=' 'pull=' 'speed-limit=' 'speed-time=' 'command-timeout=' 'registries-conf=' 'hosts-dir=' 'retry-times=' 'retry-delay=' 'policy=' 'insecure-policy' 'require-policy' 'registries.d=' 'json' 'version' 'h/help'
        case 'verify-variants'
            __oci-unpack_parse_subcommand 1 'platform=' 'all-platforms' 'json' 'max-differences=' 'ignore-mtime' 'gzip-decoder=' 'limit=+' 'creds=' 'authfile=' 'tls-verify=' 'cert-dir=' 'cache=' 'cache-max-size=' 'pull=' 'speed-limit=' 'speed-time=' 'command-timeout=' 'registries-conf=' 'hosts-dir=' 'retry-times=' 'retry-delay=' 'alternatives' 'alternative-annotation=' 'log-level=' 'version' 'h/help'
        case 'tree-digest'
            __oci-unpack_parse_subcommand 1 'platform=' 'os=' 'arch=' 'variant=' 'prefer-compression=' 'alternatives' 'alternative-annotation=' 'log-level=' 'ignore-mtime' 'gzip-decoder=' 'limit=+' 'creds=' 'authfile=' 'tls-verify=' 'cert-dir=' 'cache=' 'cache-max-size=' 'pull=' 'speed-limit=' 'speed-time=' 'command-timeout=' 'registries-conf=' 'hosts-dir=' 'retry-times=' 'retry-delay=' 'rootfs=' 'listing' 'version' 'h/help'
        case 'remove'
            __oci-unpack_parse_subcommand 1 'version' 'h/help'
        case 'store'
            __oci-unpack_parse_subcommand 0 'version' 'h/help'
            switch $unparsed_tokens[1]
            case 'list'
                __oci-unpack_parse_subcommand 1 'json' 'version' 'h/help'
            case 'prune'
                __oci-unpack_parse_subcommand 1 'version' 'h/help'
            end
        case 'help'
            __oci-unpack_parse_subcommand -r 1 'version'
        end
    end
end

function __oci-unpack_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __oci-unpack_parse_subcommand -S -a positional_count
    argparse -s r -- $argv
    set -l option_specs $argv[2..]
    set -l is_repeating_positional $_flag_r
    set -el _flag_r
    set -a commands $unparsed_tokens[1]
    set positional_index 0
    while true
        set -e unparsed_tokens[1]
        argparse -sn "$commands" $option_specs -- $unparsed_tokens 2> /dev/null
        set unparsed_tokens $argv
        set positional_index (math $positional_index + 1)
        for non_repeating_flag_or_option in $non_repeating_flags_or_options
            if set -ql "_flag_$(string replace -a - _ -- $non_repeating_flag_or_option)"
                set non_repeating_flags_or_options_absent 1
                break
            end
        end
        test (count $unparsed_tokens) -eq 0 -o \( -z "$is_repeating_positional" -a "$positional_index" -gt "$positional_count" \) && break
    end
end

function __oci-unpack_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __oci-unpack_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__oci-unpack_tokens -p)
    if test -z "$(__oci-unpack_tokens -t)"
        set -l index (count (__oci-unpack_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'oci-unpack' -f
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack" version' -l 'version' -d 'Show the version.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_positional "oci-unpack" -eq 1' -fa 'unpack' -d 'Unpack an image into an OCI runtime bundle: BUNDLE/config.json and BUNDLE/rootfs.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_positional "oci-unpack" -eq 1' -fa 'inspect' -d 'Show how an image resolves: indexes walked, candidates, chosen manifest and layers.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_positional "oci-unpack" -eq 1' -fa 'verify-variants' -d 'Prove that an index\'s variants of one image (gzip, zstd, …) yield the same filesystem.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_positional "oci-unpack" -eq 1' -fa 'tree-digest' -d 'The digest (or the whole canonical listing) of an image\'s flattened tree or of a directory.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_positional "oci-unpack" -eq 1' -fa 'remove' -d 'Remove a bundle: unmount a store bundle\'s rootfs, remove the directory, drop its store record.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_positional "oci-unpack" -eq 1' -fa 'store' -d 'Inspect and prune a layer store (--store DIR).'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_positional "oci-unpack" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" platform' -l 'platform' -d 'Platform as os/arch[/variant] (default: this machine\'s); a bare architecture (arm64) means linux/arm64.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" os' -l 'os' -d 'The platform\'s OS instead of --platform\'s (or this machine\'s), as podman\'s --os.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" arch' -l 'arch' -d 'The platform\'s architecture instead of --platform\'s (or this machine\'s); without --variant, no variant.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" variant' -l 'variant' -d 'The platform\'s CPU variant (v7, v8), as podman\'s --variant.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" prefer-compression' -l 'prefer-compression' -d 'Order of preferred layer compressions among equal platform matches, or first: the first usable entry in index order, as image-index.md describes (see docs/images.md).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" alternatives' -l 'alternatives' -d 'Read alternative descriptors: an index entry or a layer whose annotation names an equivalent manifest or layer in another compression (not standardised; see docs/images.md).'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" alternative-annotation' -l 'alternative-annotation' -d 'The annotation key that names alternatives (default zstd-compressed-alternative); implies --alternatives.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" log-level' -l 'log-level' -d 'trace, debug, info, notice, warning, error or critical.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" creds' -l 'creds' -d 'USER[:PASSWORD] for the registry (never printed).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" authfile' -l 'authfile' -d 'An auth file (containers-auth.json) instead of the usual ones.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" tls-verify' -l 'tls-verify' -d 'false: skip TLS verification and allow plain HTTP for this run (default true).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" cert-dir' -l 'cert-dir' -d 'CA certificates (*.crt) and client pairs (*.cert, *.key).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" cache' -l 'cache' -d 'Keep pulled blobs in this OCI layout, and take them from it first (docker:// images).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" cache-max-size' -l 'cache-max-size' -d 'Bound on the cached blobs\' bytes (K, M, G, T suffixes); least recently used go first.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" pull' -l 'pull' -d 'With --cache: missing (a tag the cache recorded is used without asking the registry), always (ask the registry what a tag names now), never (the cache only).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" speed-limit' -l 'speed-limit' -d 'A transfer slower than this many bytes/s over --speed-time seconds is retried (resumed); 0: off.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" speed-time' -l 'speed-time' -d 'The window for --speed-limit, in seconds.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" command-timeout' -l 'command-timeout' -d 'Everything that waits on the registry must end within this time (90s, 10m, 1h; seconds by default).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" registries-conf' -l 'registries-conf' -d 'A registries.conf (mirrors, locations, insecure and blocked registries) instead of $CONTAINERS_REGISTRIES_CONF or the user\'s and system\'s files (see docs/images.md).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" hosts-dir' -l 'hosts-dir' -d 'containerd\'s registry host configuration (HOST/hosts.toml: mirrors such as Spegel, CAs, headers) instead of /etc/containerd/certs.d (see docs/images.md).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" retry-times' -l 'retry-times' -d 'Times one registry request is tried again after a failed connection, a 429 or a 5xx (0: once).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" retry-delay' -l 'retry-delay' -d 'A fixed pause before each retry (2s, 1m); unset or 0: 0.5 s doubling to 8 s.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" policy' -l 'policy' -d 'The signature policy (containers-policy.json) instead of $HOME/.config/containers/policy.json or /etc/containers/policy.json.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" insecure-policy' -l 'insecure-policy' -d 'Apply no signature policy: accept every image.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" require-policy' -l 'require-policy' -d 'Refuse to run when no policy file exists (by default no policy means no check).'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" registries.d' -l 'registries.d' -d 'Where signature lookasides are configured, instead of the user\'s or /etc/containers/registries.d.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" force' -l 'force' -d 'Replace an existing non-empty BUNDLE (only after the new one is complete).'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" q quiet' -l 'quiet' -s 'q' -d 'No progress output.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" template' -l 'template' -d 'A runtime-spec template for config.json (default: bundle-templates/default.json, or rootless.json when rootless; both built in).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack"' -l 'env' -d 'NAME=VALUE to add to the environment (repeatable).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" user' -l 'user' -d 'Run as this user instead of the image\'s User (uid, name, uid:gid, name:group).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" workdir' -l 'workdir' -d 'Working directory instead of the image\'s WorkingDir.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack"' -l 'entrypoint' -d 'Entrypoint instead of the image\'s (repeat for each argument).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" gzip-decoder' -l 'gzip-decoder' -d 'isal (default, fast) or zlib (the reference implementation).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack"' -l 'limit' -d 'NAME=VALUE: change a resource limit (repeatable; see docs/limits.md).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" rootless' -l 'rootless' -d 'Unpack without privileges (the default when not run as root): files belong to you, other owners are recorded in user.rootlesscontainers xattrs as umoci records them, and config.json maps you to root in a user namespace.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack"' -l 'uid-map' -d 'CONTAINER:HOST:SIZE: give files the host uid their owner stands for, and write the map into config.json with a user namespace (repeatable; root only).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack"' -l 'gid-map' -d 'CONTAINER:HOST:SIZE: the same for groups (repeatable; either map defaults to the other).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" userns' -l 'userns' -d 'auto: as an ordinary user, unpack as root in a user namespace that maps you to root and your subordinate ids (/etc/subuid, /etc/subgid) from 1, through newuidmap and newgidmap, as podman does; owners are real (shifted) on disk and config.json carries the maps.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" map-unmapped' -l 'map-unmapped' -d 'What an id-mapped unpack does with ids no map holds: refuse (default) or overflow (nobody).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" store' -l 'store' -d 'A layer store (created on first use): each layer is unpacked into it once, and BUNDLE/rootfs             is an overlay of the image\'s layers with the bundle\'s own upper directory (needs root, or a             user namespace with --no-mount).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" no-mount' -l 'no-mount' -d 'With --store: write the bundle without mounting rootfs; BUNDLE/rootfs.mount.json says what to mount.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" verifier-dir' -l 'verifier-dir' -d 'Run every executable in DIR for the image before any layer is fetched (containerd\'s image verifiers); all must exit 0.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" verifier-timeout' -l 'verifier-timeout' -d 'Seconds each --verifier-dir program may take.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" json' -l 'json' -d 'Print the documented JSON object (docs/unpacking.md) instead of text.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" version' -l 'version' -d 'Show the version.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack unpack" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" platform' -l 'platform' -d 'Platform as os/arch[/variant] (default: this machine\'s); a bare architecture (arm64) means linux/arm64.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" os' -l 'os' -d 'The platform\'s OS instead of --platform\'s (or this machine\'s), as podman\'s --os.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" arch' -l 'arch' -d 'The platform\'s architecture instead of --platform\'s (or this machine\'s); without --variant, no variant.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" variant' -l 'variant' -d 'The platform\'s CPU variant (v7, v8), as podman\'s --variant.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" prefer-compression' -l 'prefer-compression' -d 'Order of preferred layer compressions among equal platform matches, or first: the first usable entry in index order, as image-index.md describes (see docs/images.md).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" alternatives' -l 'alternatives' -d 'Read alternative descriptors: an index entry or a layer whose annotation names an equivalent manifest or layer in another compression (not standardised; see docs/images.md).'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" alternative-annotation' -l 'alternative-annotation' -d 'The annotation key that names alternatives (default zstd-compressed-alternative); implies --alternatives.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" log-level' -l 'log-level' -d 'trace, debug, info, notice, warning, error or critical.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" creds' -l 'creds' -d 'USER[:PASSWORD] for the registry (never printed).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" authfile' -l 'authfile' -d 'An auth file (containers-auth.json) instead of the usual ones.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" tls-verify' -l 'tls-verify' -d 'false: skip TLS verification and allow plain HTTP for this run (default true).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" cert-dir' -l 'cert-dir' -d 'CA certificates (*.crt) and client pairs (*.cert, *.key).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" cache' -l 'cache' -d 'Keep pulled blobs in this OCI layout, and take them from it first (docker:// images).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" cache-max-size' -l 'cache-max-size' -d 'Bound on the cached blobs\' bytes (K, M, G, T suffixes); least recently used go first.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" pull' -l 'pull' -d 'With --cache: missing (a tag the cache recorded is used without asking the registry), always (ask the registry what a tag names now), never (the cache only).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" speed-limit' -l 'speed-limit' -d 'A transfer slower than this many bytes/s over --speed-time seconds is retried (resumed); 0: off.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" speed-time' -l 'speed-time' -d 'The window for --speed-limit, in seconds.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" command-timeout' -l 'command-timeout' -d 'Everything that waits on the registry must end within this time (90s, 10m, 1h; seconds by default).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" registries-conf' -l 'registries-conf' -d 'A registries.conf (mirrors, locations, insecure and blocked registries) instead of $CONTAINERS_REGISTRIES_CONF or the user\'s and system\'s files (see docs/images.md).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" hosts-dir' -l 'hosts-dir' -d 'containerd\'s registry host configuration (HOST/hosts.toml: mirrors such as Spegel, CAs, headers) instead of /etc/containerd/certs.d (see docs/images.md).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" retry-times' -l 'retry-times' -d 'Times one registry request is tried again after a failed connection, a 429 or a 5xx (0: once).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" retry-delay' -l 'retry-delay' -d 'A fixed pause before each retry (2s, 1m); unset or 0: 0.5 s doubling to 8 s.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" policy' -l 'policy' -d 'The signature policy (containers-policy.json) instead of $HOME/.config/containers/policy.json or /etc/containers/policy.json.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" insecure-policy' -l 'insecure-policy' -d 'Apply no signature policy: accept every image.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" require-policy' -l 'require-policy' -d 'Refuse to run when no policy file exists (by default no policy means no check).'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" registries.d' -l 'registries.d' -d 'Where signature lookasides are configured, instead of the user\'s or /etc/containers/registries.d.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" json' -l 'json' -d 'Print the documented JSON object (docs/inspect-json.md) instead of text.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" version' -l 'version' -d 'Show the version.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack inspect" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" platform' -l 'platform' -d 'Verify this platform\'s variants (os/arch[/variant]; default: this machine\'s).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" all-platforms' -l 'all-platforms' -d 'Verify the variants of every platform.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" json' -l 'json' -d 'Print the documented JSON object (docs/verify-variants.md) instead of text.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" max-differences' -l 'max-differences' -d 'Differing paths to name per variant (all are counted).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" ignore-mtime' -l 'ignore-mtime' -d 'Leave modification times out of listings and comparisons.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" gzip-decoder' -l 'gzip-decoder' -d 'isal (default, fast) or zlib (the reference implementation).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants"' -l 'limit' -d 'NAME=VALUE: change a resource limit (repeatable; see docs/limits.md).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" creds' -l 'creds' -d 'USER[:PASSWORD] for the registry (never printed).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" authfile' -l 'authfile' -d 'An auth file (containers-auth.json) instead of the usual ones.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" tls-verify' -l 'tls-verify' -d 'false: skip TLS verification and allow plain HTTP for this run (default true).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" cert-dir' -l 'cert-dir' -d 'CA certificates (*.crt) and client pairs (*.cert, *.key).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" cache' -l 'cache' -d 'Keep pulled blobs in this OCI layout, and take them from it first (docker:// images).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" cache-max-size' -l 'cache-max-size' -d 'Bound on the cached blobs\' bytes (K, M, G, T suffixes); least recently used go first.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" pull' -l 'pull' -d 'With --cache: missing (a tag the cache recorded is used without asking the registry), always (ask the registry what a tag names now), never (the cache only).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" speed-limit' -l 'speed-limit' -d 'A transfer slower than this many bytes/s over --speed-time seconds is retried (resumed); 0: off.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" speed-time' -l 'speed-time' -d 'The window for --speed-limit, in seconds.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" command-timeout' -l 'command-timeout' -d 'Everything that waits on the registry must end within this time (90s, 10m, 1h; seconds by default).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" registries-conf' -l 'registries-conf' -d 'A registries.conf (mirrors, locations, insecure and blocked registries) instead of $CONTAINERS_REGISTRIES_CONF or the user\'s and system\'s files (see docs/images.md).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" hosts-dir' -l 'hosts-dir' -d 'containerd\'s registry host configuration (HOST/hosts.toml: mirrors such as Spegel, CAs, headers) instead of /etc/containerd/certs.d (see docs/images.md).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" retry-times' -l 'retry-times' -d 'Times one registry request is tried again after a failed connection, a 429 or a 5xx (0: once).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" retry-delay' -l 'retry-delay' -d 'A fixed pause before each retry (2s, 1m); unset or 0: 0.5 s doubling to 8 s.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" alternatives' -l 'alternatives' -d 'Read alternative descriptors: an index entry or a layer whose annotation names an equivalent manifest or layer in another compression (not standardised; see docs/images.md).'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" alternative-annotation' -l 'alternative-annotation' -d 'The annotation key that names alternatives (default zstd-compressed-alternative); implies --alternatives.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" log-level' -l 'log-level' -d 'trace, debug, info, notice, warning, error or critical.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" version' -l 'version' -d 'Show the version.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack verify-variants" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" platform' -l 'platform' -d 'Platform as os/arch[/variant] (default: this machine\'s); a bare architecture (arm64) means linux/arm64.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" os' -l 'os' -d 'The platform\'s OS instead of --platform\'s (or this machine\'s), as podman\'s --os.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" arch' -l 'arch' -d 'The platform\'s architecture instead of --platform\'s (or this machine\'s); without --variant, no variant.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" variant' -l 'variant' -d 'The platform\'s CPU variant (v7, v8), as podman\'s --variant.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" prefer-compression' -l 'prefer-compression' -d 'Order of preferred layer compressions among equal platform matches, or first: the first usable entry in index order, as image-index.md describes (see docs/images.md).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" alternatives' -l 'alternatives' -d 'Read alternative descriptors: an index entry or a layer whose annotation names an equivalent manifest or layer in another compression (not standardised; see docs/images.md).'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" alternative-annotation' -l 'alternative-annotation' -d 'The annotation key that names alternatives (default zstd-compressed-alternative); implies --alternatives.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" log-level' -l 'log-level' -d 'trace, debug, info, notice, warning, error or critical.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" ignore-mtime' -l 'ignore-mtime' -d 'Leave modification times out of listings and comparisons.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" gzip-decoder' -l 'gzip-decoder' -d 'isal (default, fast) or zlib (the reference implementation).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest"' -l 'limit' -d 'NAME=VALUE: change a resource limit (repeatable; see docs/limits.md).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" creds' -l 'creds' -d 'USER[:PASSWORD] for the registry (never printed).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" authfile' -l 'authfile' -d 'An auth file (containers-auth.json) instead of the usual ones.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" tls-verify' -l 'tls-verify' -d 'false: skip TLS verification and allow plain HTTP for this run (default true).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" cert-dir' -l 'cert-dir' -d 'CA certificates (*.crt) and client pairs (*.cert, *.key).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" cache' -l 'cache' -d 'Keep pulled blobs in this OCI layout, and take them from it first (docker:// images).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" cache-max-size' -l 'cache-max-size' -d 'Bound on the cached blobs\' bytes (K, M, G, T suffixes); least recently used go first.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" pull' -l 'pull' -d 'With --cache: missing (a tag the cache recorded is used without asking the registry), always (ask the registry what a tag names now), never (the cache only).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" speed-limit' -l 'speed-limit' -d 'A transfer slower than this many bytes/s over --speed-time seconds is retried (resumed); 0: off.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" speed-time' -l 'speed-time' -d 'The window for --speed-limit, in seconds.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" command-timeout' -l 'command-timeout' -d 'Everything that waits on the registry must end within this time (90s, 10m, 1h; seconds by default).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" registries-conf' -l 'registries-conf' -d 'A registries.conf (mirrors, locations, insecure and blocked registries) instead of $CONTAINERS_REGISTRIES_CONF or the user\'s and system\'s files (see docs/images.md).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" hosts-dir' -l 'hosts-dir' -d 'containerd\'s registry host configuration (HOST/hosts.toml: mirrors such as Spegel, CAs, headers) instead of /etc/containerd/certs.d (see docs/images.md).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" retry-times' -l 'retry-times' -d 'Times one registry request is tried again after a failed connection, a 429 or a 5xx (0: once).' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" retry-delay' -l 'retry-delay' -d 'A fixed pause before each retry (2s, 1m); unset or 0: 0.5 s doubling to 8 s.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" rootfs' -l 'rootfs' -d 'List this directory (an unpacked rootfs) instead of, or to compare with, IMAGE.' -rfka ''
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" listing' -l 'listing' -d 'Print the canonical listing instead of its digest.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" version' -l 'version' -d 'Show the version.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack tree-digest" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack remove" version' -l 'version' -d 'Show the version.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack remove" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack store" version' -l 'version' -d 'Show the version.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack store" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_positional "oci-unpack store" -eq 1' -fa 'list' -d 'The store\'s layers: chain ID, size on disk, the bundles that use them.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_positional "oci-unpack store" -eq 1' -fa 'prune' -d 'Remove layers no live bundle uses (never one another process is populating or mounting).'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack store list" json' -l 'json' -d 'Print a JSON array instead of text.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack store list" version' -l 'version' -d 'Show the version.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack store list" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack store prune" version' -l 'version' -d 'Show the version.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack store prune" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'oci-unpack' -n '__oci-unpack_should_offer_completions_for_flags_or_options "oci-unpack help" version' -l 'version' -d 'Show the version.'
