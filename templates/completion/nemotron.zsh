#compdef nemotron
# zsh completion for nemotron; load with: source <(nemotron completion zsh)
# (after compinit: autoload -Uz compinit && compinit). The words typed so far go to the hidden
# `nemotron __complete`, which prints `value<TAB>description` lines and a directive line.
_nemotron() {
  local -a out cands
  local entry directive=":files"
  out=("${(@f)$("${words[1]}" __complete "${(@)words[2,CURRENT-1]}" "${words[CURRENT]}" 2>/dev/null)}")
  for entry in "${out[@]}"; do
    case "$entry" in
      :files|:nofiles) directive="$entry" ;;
      "") ;;
      *$'\t'*) cands+=("${${entry%%$'\t'*}//:/\\:}:${entry#*$'\t'}") ;;
      *) cands+=("${entry//:/\\:}") ;;
    esac
  done
  if (( ${#cands} )); then _describe -t values 'nemotron' cands; fi
  if [[ "$directive" == ":files" ]]; then _files; fi
  return 0
}
compdef _nemotron nemotron
