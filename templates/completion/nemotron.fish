# fish completion for nemotron; load with: nemotron completion fish | source
# The words typed so far go to the hidden `nemotron __complete`, which prints `value<TAB>description`
# lines (fish's own format) and a last directive line, `:files` or `:nofiles`.
function __nemotron_complete
    set -l words (commandline -opc)
    set -l cur (commandline -ct)
    for entry in ($words[1] __complete $words[2..-1] $cur 2>/dev/null)
        switch $entry
            case ':files'
                __fish_complete_path $cur
            case ':nofiles'
            case '*'
                echo $entry
        end
    end
end
complete -c nemotron -f -a '(__nemotron_complete)'
